"""A real IMAP server (Dovecot, from Debian's dovecot-imapd) on loopback for the tests.

Started from a config file in a temporary directory: plaintext login allowed (loopback
only), one passwd-file user per account, Maildir storage owned by uid 65534 since Dovecot
will not run mail processes as root. With a `junk_rule` (Sieve's test syntax), it is a
whole mail system: LMTP delivery (dovecot-lmtpd) through a global Sieve script
(dovecot-sieve) that files the messages the rule matches into the Junk folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.clock import real_time_environment
from tests.support.postgres import free_port
from tests.support.processes import stop_process

MAIL_UID = 65534

CONFIG = """\
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {uid}
first_valid_uid = {uid}
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""

DELIVERY = """protocols = $protocols lmtp
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@localhost
}}
plugin {{
  sieve_before = {root}/junk.sieve
}}
namespace inbox {{
  inbox = yes
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
}}
"""


class DovecotUnavailable(RuntimeError):
    """Dovecot is not installed."""


@dataclass
class Dovecot:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    tls_port: int | None = None
    lmtp_port: int | None = None

    @classmethod
    def start(
        cls,
        accounts: dict[str, str],
        *,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        junk_rule: str | None = None,
    ) -> Dovecot:
        """Plain IMAP on `port`; with a certificate also STARTTLS there and implicit TLS on
        `tls_port`; with `junk_rule` (e.g. `header :contains "subject" "offer"`), LMTP on
        `lmtp_port`, filing what the rule matches into Junk."""
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not Path(binary).exists():
            raise DovecotUnavailable(
                "dovecot not found; run scripts/install-services (apt-get install dovecot-imapd)"
            )
        root = Path(tempfile.mkdtemp(prefix="mailramp-imap-"))
        os.chmod(root, 0o755)  # noqa: S103 - Dovecot's unprivileged users must reach it
        for folder in ("mail", "home", "run", "state"):
            (root / folder).mkdir()
        for folder in ("mail", "home"):
            os.chown(root / folder, MAIL_UID, MAIL_UID)
        (root / "users").write_text(
            "".join(f"{user}:{{PLAIN}}{password}::::::\n" for user, password in accounts.items())
        )
        port = free_port()
        tls_port = free_port() if cert_file else 0
        ssl = (
            f"ssl = yes\nssl_cert = <{cert_file}\nssl_key = <{key_file}"
            if cert_file
            else "ssl = no"
        )
        is_root = os.geteuid() == 0
        config = root / "dovecot.conf"
        lmtp_port = free_port() if junk_rule else 0
        delivery = ""
        if junk_rule:
            (root / "junk.sieve").write_text(
                'require ["fileinto", "mailbox"];\n'
                f'if {junk_rule} {{ fileinto :create "Junk"; stop; }}\n'
            )
            delivery = DELIVERY.format(root=root, lmtp_port=lmtp_port)
        config.write_text(
            CONFIG.format(
                root=root,
                port=port,
                uid=MAIL_UID,
                ssl=ssl,
                tls_port=tls_port,
                login_user="dovenull" if is_root else os.environ.get("USER", "nobody"),
                internal_user="dovecot" if is_root else os.environ.get("USER", "nobody"),
                internal_group="dovecot" if is_root else os.environ.get("USER", "nobody"),
            )
            + delivery
        )
        process = subprocess.Popen(
            [binary, "-F", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=real_time_environment(),
        )
        server = cls(root, port, process, tls_port or None, lmtp_port or None)
        deadline = time.monotonic() + 15
        import socket

        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                raise RuntimeError(f"dovecot exited: {output}\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        raise RuntimeError("dovecot did not start listening")

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.root, ignore_errors=True)
