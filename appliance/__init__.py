"""The single-box appliance: provisioning, service units and the lab router."""
