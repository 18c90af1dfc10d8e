"""The ``wispbill backup`` and ``wispbill restore`` commands (importing this module registers them)."""

from __future__ import annotations

from pathlib import Path

import click

from core import backup
from core.cli import _emit_json, cli, open_database


@cli.command("backup")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the archive (default: the backups.dir setting, else DATA_DIR/backups).")
@click.option("--keep", type=click.IntRange(min=1), help="Keep this many newest archives (default: backups.keep, 14).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def backup_cmd(directory, keep, as_json):
    """Write a backup archive of the database and the settings, then delete the oldest beyond --keep."""
    config = open_database(require_current=False)
    path = backup.create(directory, keep=keep, config=config)
    size = path.stat().st_size
    if as_json:
        _emit_json({"path": str(path), "size": size})
    else:
        click.echo(f"backup written to {path} ({size} bytes)")


@cli.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Confirm: the database is overwritten with the backup.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def restore_cmd(file, yes, as_json):
    """Replace the database with the backup in FILE and migrate it to this version's schema."""
    config = open_database(require_current=False)
    done = backup.restore(file, yes=yes, config=config)
    manifest = done.manifest
    if as_json:
        _emit_json({"file": str(file), "created_at": manifest["created_at"], "backend": manifest["backend"],
                    "restored_schema_version": done.restored_version, "schema_version": done.schema_version,
                    "tables": manifest["tables"], "secret_key_restored": done.secret_key_restored})
        return
    click.echo(f"restored {file.name} (taken {manifest['created_at']}, schema version {done.restored_version}); "
               f"schema now at version {done.schema_version}")
    if done.secret_key_restored:
        click.echo("the secret key was restored too: staff must sign in again")
    if manifest.get("config_file"):
        click.echo(f"the backup holds the instance configuration {manifest['config_file']}: "
                   f"compare it with yours (tar -xzf {file} settings/)")
