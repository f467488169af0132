"""Start and stop a throwaway PostgreSQL server for the test suite.

Used when no server URL is given in ``LOYALTYKIT_TEST_POSTGRESQL_URL``. The server
runs from the PostgreSQL binaries on the machine (``initdb``/``pg_ctl`` on PATH or
under ``/usr/lib/postgresql/*/bin``), listens only on a Unix socket in a temporary
directory, trusts local connections and is deleted when the test session ends.
``initdb`` refuses to run as root, so as root the cluster is created and run as the
``postgres`` user (``runuser``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresServer", "find_binaries"]


def find_binaries() -> Path | None:
    """Return the directory holding ``initdb`` and ``pg_ctl``, or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if Path(directory, "initdb").exists() and Path(directory, "pg_ctl").exists():
            return Path(directory)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory, reachable on a Unix socket."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="loyaltykit-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = "postgres"
            try:
                pwd.getpwnam(user)
            except KeyError:
                subprocess.run([_sbin("useradd"), "--system", "--no-create-home", user],
                               check=True)
            self._as_user = [_sbin("runuser"), "-u", user, "--"]
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, user)
        self.socket_dir.mkdir()
        if self._as_user:
            shutil.chown(self.socket_dir, "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, text=True)

    def start(self) -> str:
        """Create and start the cluster; return its SQLAlchemy URL (psycopg 3)."""
        self._run(
            str(self.binaries / "initdb"), "-D", str(self.data), "-U", "postgres",
            "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
        )
        options = (
            f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
            "-c shared_buffers=128MB"
        )
        try:
            self._run(
                str(self.binaries / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                "-o", options, "-w", "-t", "60", "start",
            )
        except subprocess.CalledProcessError as exc:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{log}") from exc
        return f"postgresql+psycopg://postgres@/postgres?host={self.socket_dir}"

    def stop(self) -> None:
        """Stop the server and delete its files."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")
        for _ in range(50):
            if not (self.socket_dir / ".s.PGSQL.5432").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)


def _sbin(name: str) -> str:
    """``name`` from PATH, or from the sbin directories a clean shell's PATH
    (``/usr/bin:/bin``) leaves out."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin") or name
