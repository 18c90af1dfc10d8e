"""The lab router: a stand-in MikroTik speaking the RouterOS API over TCP, for demos,
tests and benchmarks (see docs/lab-router.md).

Modules: ``wire`` (words and sentences), ``query`` (print queries), ``schema`` (the
menus), ``state`` (tables and the JSON file), ``commands`` (what each command does),
``session`` (login, tags, traps), ``server`` (:class:`~appliance.lab.server.LabRouter`),
``cli`` (``wispbill lab router``).
"""
