"""``wispbill mpesa ...``: registering the C2B confirmation and validation URLs with Daraja."""

from __future__ import annotations

import click

from core import settings as core_settings
from core.errors import ValidationError

from gateways.mpesa import c2b
from gateways.mpesa import settings as mpesa_settings
from gateways.mpesa.daraja import DarajaError
from gateways.mpesa.stk import client_for


@click.group("mpesa")
def mpesa_group():
    """M-Pesa (Safaricom Daraja) set-up."""


@mpesa_group.command("register-urls")
@click.option("--base-url", help="Public https address of wispbill (default: the web.base_url setting). "
                                 "Not needed when mpesa.callback_base_url is set.")
@click.option("--response-type", type=click.Choice(c2b.RESPONSE_TYPES), default="Completed", show_default=True,
              help="What M-Pesa does with a payment when the validation URL does not answer.")
@click.option("--api-version", type=click.Choice(("v1", "v2")), default="v2", show_default=True,
              help="The C2B register URL version your Daraja app has.")
def register_urls(base_url, response_type, api_version):
    """Register the C2B confirmation and validation URLs of mpesa.c2b_shortcode."""
    from core.cli import open_database

    open_database()
    config = mpesa_settings.load()
    needed = {"mpesa.consumer_key": config.consumer_key, "mpesa.consumer_secret": config.consumer_secret,
              "mpesa.shortcode or mpesa.c2b_shortcode": config.c2b_shortcode,
              "mpesa.callback_token": config.callback_token}
    missing = [key for key, value in needed.items() if not value]
    if missing:
        raise click.UsageError("M-Pesa is not set up yet: set " + ", ".join(missing))
    hooks_base = _hooks_base(config, base_url)
    urls = c2b.urls(config, hooks_base)
    shown = {name: url.replace(config.callback_token, "<callback_token>") for name, url in urls.items()}
    named = [url for url in shown.values() if c2b.FORBIDDEN_WORDS.search(url)]
    if named:
        raise click.UsageError(f"Daraja refuses callback URLs that contain 'mpesa' or 'safaricom' ({named[0]}): "
                               "set mpesa.callback_base_url to a public address without them that your proxy "
                               "forwards to /hooks/mpesa")
    try:
        answer = c2b.register_urls(client_for(config), config, hooks_base, response_type, api_version)
    except DarajaError as exc:
        raise click.ClickException(str(exc)) from None
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    code = str(answer.get("ResponseCode", "")).strip()
    description = " ".join(str(answer.get("ResponseDescription") or "").split()) or "no description"
    click.echo(f"shortcode {config.c2b_shortcode} ({config.environment}, ResponseType {response_type}):")
    click.echo(f"  confirmation: {shown['ConfirmationURL']}")
    click.echo(f"  validation:   {shown['ValidationURL']}")
    if code.strip("0"):
        raise click.ClickException(f"Daraja did not register the URLs: ResponseCode {code}: {description}")
    click.echo(f"Daraja answered: {('ResponseCode ' + code + ': ') if code else ''}{description}")


def _hooks_base(config, base_url: str | None) -> str:
    """Where Daraja should post: mpesa.callback_base_url, else ``<base>/hooks/mpesa``."""
    if config.callback_base_url:
        return config.callback_base_url
    base = (base_url or core_settings.get_or("web.base_url", None) or "").strip().rstrip("/")
    if not base:
        raise click.UsageError("give --base-url (the public https address of wispbill), or set web.base_url "
                               "or mpesa.callback_base_url")
    try:
        mpesa_settings.check_public_url(base, "--base-url")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return base + "/hooks/mpesa"
