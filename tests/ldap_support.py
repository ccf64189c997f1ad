"""A real LDAP directory for the tests: Debian's ``slapd`` on 127.0.0.1, with a small tree from LDIF.

`Slapd` writes a ``slapd.conf`` and an LDIF tree into a temporary directory,
loads the tree with ``slapadd`` (offline, no bind needed) and starts slapd
listening on two free ports: ``ldap://`` (StartTLS offered) and ``ldaps://``.
The TLS certificate is signed by a CA made here (`make_ca`), written as
``ca.pem`` for ``ca_file``.  Starting takes about a second, so test classes
share one (``setUpClass``); `stop` and `start` simulate an outage on the same
ports and data.

The tree (base ``dc=example,dc=org``)::

    ou=people   alice (in devs), bob (in no group), carol (in admins)
    ou=groups   devs, admins (groupOfNames, ``member`` DNs)
    ou=services harbor (the service account harbor-cache binds as)
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
BASE = "dc=example,dc=org"
SERVICE_DN = f"cn=harbor,ou=services,{BASE}"
SERVICE_PASSWORD = "svc-Secret-4711"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
GROUPS = {"devs": ["alice"], "admins": ["carol"]}


def available() -> bool:
    return os.path.exists(SLAPD) and os.path.exists(SLAPADD)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca(directory: str) -> tuple[str, str, str]:
    """(ca.pem, server.pem, server.key) in ``directory``: a CA and a server certificate for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harbor-cache test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tuple(os.path.join(directory, n) for n in ("ca.pem", "server.pem", "server.key"))
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    os.chmod(paths[2], 0o600)
    return paths  # type: ignore[return-value]


def tree_ldif() -> str:
    entries = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
        f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: harbor\n"
        f"userPassword: {SERVICE_PASSWORD}\n",
    ]
    for name, password in PASSWORDS.items():
        entries.append(
            f"dn: uid={name},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}\nsn: {name}\n"
            f"userPassword: {password}\n"
        )
    for group, members in GROUPS.items():
        lines = "".join(f"member: uid={m},ou=people,{BASE}\n" for m in members)
        entries.append(f"dn: cn={group},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {group}\n{lines}")
    return "\n".join(entries)


class Slapd:
    """slapd on 127.0.0.1: ``url`` (ldap://, StartTLS offered), ``ldaps_url``, ``ca_file``; `close` removes it all."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="harbor-slapd-")
        self.ca_file, cert, key = make_ca(self.dir)
        self.port = free_port()
        self.ldaps_port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.ldaps_port}"
        db = os.path.join(self.dir, "db")
        os.makedirs(db)
        self.conf = os.path.join(self.dir, "slapd.conf")
        with open(self.conf, "w") as f:
            f.write(
                "\n".join(
                    [
                        *(f"include /etc/ldap/schema/{s}.schema" for s in ("core", "cosine", "inetorgperson", "nis")),
                        "modulepath /usr/lib/ldap",
                        "moduleload back_mdb",
                        f"pidfile {self.dir}/slapd.pid",
                        f"argsfile {self.dir}/slapd.args",
                        f"TLSCACertificateFile {self.ca_file}",
                        f"TLSCertificateFile {cert}",
                        f"TLSCertificateKeyFile {key}",
                        "database mdb",
                        f'suffix "{BASE}"',
                        f'rootdn "cn=admin,{BASE}"',
                        "rootpw admin-root-pw",
                        f"directory {db}",
                        "maxsize 10485760",
                        "access to attrs=userPassword by self read by anonymous auth by * none",
                        f'access to * by dn.exact="{SERVICE_DN}" read by users read by * none',
                        "",
                    ]
                )
            )
        ldif = os.path.join(self.dir, "tree.ldif")
        with open(ldif, "w") as f:
            f.write(tree_ldif())
        subprocess.run([SLAPADD, "-f", self.conf, "-l", ldif], check=True, capture_output=True, timeout=60)
        self.log_path = os.path.join(self.dir, "slapd.log")
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", self.conf, "-h", f"{self.url}/ {self.ldaps_url}/"],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("slapd exited: " + open(self.log_path, errors="replace").read()[-4000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    with socket.create_connection(("127.0.0.1", self.ldaps_port), timeout=1):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("slapd did not listen within 30 s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def config_toml(
        self, *, ldaps: bool = False, ca_file: bool = True, group_roles: dict | None = None, **extra
    ) -> str:
        """An ``[auth.ldap]`` table for this directory (StartTLS on ``url`` unless ``ldaps``)."""
        lines = [
            "[auth.ldap]",
            f'url = "{self.ldaps_url if ldaps else self.url}"',
            f'bind_dn = "{SERVICE_DN}"',
            f'bind_password = "{SERVICE_PASSWORD}"',
            f'user_base = "ou=people,{BASE}"',
            f'group_base = "ou=groups,{BASE}"',
        ]
        if ca_file:
            lines.append(f'ca_file = "{self.ca_file}"')
        for key, value in extra.items():
            lines.append(
                f"{key} = {value!r}".replace("'", '"') if isinstance(value, str) else f"{key} = {str(value).lower()}"
            )
        lines.append("[auth.ldap.group_roles]")
        for cn, target in (
            group_roles if group_roles is not None else {"devs": "read-write", "admins": "admin"}
        ).items():
            lines.append(f'{cn} = "{target}"')
        return "\n".join(lines) + "\n"
