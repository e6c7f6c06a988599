"""A real OpenLDAP server (Debian's slapd) for the LDAP tests: its configuration, a CA and a server
certificate made here, and a small lab's directory (people, groups, a service account) loaded with ldapadd."""
import datetime
import ipaddress
import shutil
import socket
import subprocess
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=lab,dc=example"
ROOT_DN, ROOT_PASSWORD = f"cn=admin,{SUFFIX}", "root-secret"
SERVICE_DN, SERVICE_PASSWORD = f"cn=labres,ou=services,{SUFFIX}", "service-secret"
PEOPLE, GROUPS = f"ou=people,{SUFFIX}", f"ou=groups,{SUFFIX}"

# Active Directory's own attributes (same OIDs), so the tests can use the README's AD filter on slapd.
CONFIG = """
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' EQUALITY caseIgnoreMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' EQUALITY integerMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.55555.1.1 NAME 'labresADAccount' AUXILIARY MAY ( sAMAccountName $ userAccountControl ) )
pidfile {dir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {dir}/data
access to attrs=userPassword by anonymous auth by self write by * none
access to * by dn.exact="{service_dn}" read by self read by * none
"""


def person(uid, given, family, password, *, account_control=512):
    return f"""dn: uid={uid},{PEOPLE}
objectClass: inetOrgPerson
objectClass: labresADAccount
uid: {uid}
sAMAccountName: {uid}
userAccountControl: {account_control}
cn: {given} {family}
givenName: {given}
sn: {family}
mail: {uid}@lab.example
userPassword: {password}
"""


def group(name, *members):
    lines = "".join(f"member: uid={uid},{PEOPLE}\n" for uid in members)
    return f"dn: cn={name},{GROUPS}\nobjectClass: groupOfNames\ncn: {name}\n{lines}"


DIRECTORY = "\n".join([
    f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: lab\no: The Lab\n",
    f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n",
    f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n",
    f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
    f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: labres\nuserPassword: {SERVICE_PASSWORD}\n",
    person("alice", "Alice", "Liddell", "alice-password"),
    person("olivia", "Olivia", "Okafor", "olivia-password"),
    person("dave", "Dave", "Departed", "dave-password", account_control=514),  # 514: AD's ACCOUNTDISABLE bit (2) set
    group("students", "alice"),
    group("phd", "olivia"),
    group("labres-staff", "olivia"),
])


class Slapd:
    """slapd on two free ports of 127.0.0.1: ldap:// (StartTLS offered) and ldaps://."""

    def __init__(self, folder):
        self.folder = folder
        self.port, self.tls_port = free_port(), free_port()
        self.process = None

    @property
    def url(self):
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_url(self):
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self):
        return str(self.folder / "ca.pem")

    def start(self):
        (self.folder / "data").mkdir(parents=True)
        make_certificates(self.folder)
        config = self.folder / "slapd.conf"
        config.write_text(CONFIG.format(dir=self.folder, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD, service_dn=SERVICE_DN))
        listen = f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"
        self.log = open(self.folder / "slapd.log", "w")
        # -d 0: stays in the foreground (a child the fixture can stop), logging nothing but start-up failures.
        self.process = subprocess.Popen([SLAPD, "-d", "0", "-f", str(config), "-h", listen], stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_listening()
        self.ldapadd(DIRECTORY)
        return self

    def ldapadd(self, ldif, command="ldapadd"):
        done = subprocess.run([command, "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
                              input=ldif, text=True, capture_output=True, timeout=30)
        if done.returncode:
            raise RuntimeError(f"{command} failed ({done.returncode}): {done.stderr}")

    def set_members(self, group_name, *uids):
        """Make `uids` the only members of the group."""
        members = "".join(f"member: uid={uid},{PEOPLE}\n" for uid in uids)
        self.ldapadd(f"dn: cn={group_name},{GROUPS}\nchangetype: modify\nreplace: member\n{members}", command="ldapmodify")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()

    def _wait_listening(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited ({self.process.returncode}):\n" + (self.folder / "slapd.log").read_text()[-3000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("slapd did not start listening within 20 s")


def slapd_missing():
    """Why the LDAP tests cannot run here, or None."""
    missing = [name for name in (SLAPD, "ldapadd", "ldapmodify") if not shutil.which(name)]
    if missing:
        return f"{', '.join(missing)} missing: apt-get install -y slapd ldap-utils"
    try:
        import django_auth_ldap  # noqa: F401
        import ldap  # noqa: F401
    except ImportError:
        return "python-ldap or django-auth-ldap missing: apt-get install -y gcc libldap2-dev libsasl2-dev, then pip install '.[ldap]'"
    return None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_certificates(folder):
    """A CA (ca.pem) and a server certificate it signed for localhost and 127.0.0.1 (server.pem, server.key)."""
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labres test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30)).add_extension(names, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(server.public_bytes(pem))
    key = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (folder / "server.key").write_bytes(key)
