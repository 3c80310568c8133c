"""Issue "Foundations": the CLI, PKI, TLS server and kubeconfig, with real kubectl and curl."""

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import time

import pytest

from conftest import KiteServer, kubectl_path, kubectl_versions, run_kite


def test_fresh_server_is_ready_in_well_under_a_second(kite_server):
    elapsed = kite_server.start()
    assert elapsed < 1.0, f"ready after {elapsed:.3f}s"


@pytest.mark.parametrize("version", [v for v in ["1.27", "1.30", "1.33"] if v in kubectl_versions()])
def test_kubectl_version_shows_the_v1_33_server(kite_server, version):
    kite_server.start()
    out = kite_server.kubectl("version", "-o", "json", version=version)
    server = json.loads(out.stdout)["serverVersion"]
    assert server["gitVersion"] == "v1.33.0+kite"
    assert (server["major"], server["minor"]) == ("1", "33")


def test_at_least_one_kubectl_is_installed():
    assert kubectl_versions(), "no /usr/lib/google-cloud-sdk/bin/kubectl.1.NN on this machine"


def test_kubeconfig_is_written_with_mode_0600(kite_server):
    kite_server.start()
    assert stat.S_IMODE(os.stat(kite_server.kubeconfig).st_mode) == 0o600


def test_write_kubeconfig_mode_flag_sets_the_mode(kite_server):
    kite_server.start(["--write-kubeconfig-mode", "0644"])
    assert stat.S_IMODE(os.stat(kite_server.kubeconfig).st_mode) == 0o644


def test_anonymous_curl_gets_401_status_on_api_and_200_on_readyz(kite_server):
    kite_server.start()
    code, body, _ = kite_server.curl("/api")
    assert code == 401
    status = json.loads(body)
    assert status["kind"] == "Status" and status["reason"] == "Unauthorized" and status["code"] == 401
    code, body, _ = kite_server.curl("/readyz")
    assert (code, body) == (200, "ok")
    code, body, _ = kite_server.curl("/readyz?verbose")
    assert code == 200 and "[+]etcd ok" in body and body.rstrip().endswith("readyz check passed")
    # Each component running in the server reports under its own name.
    for component in ["kube-scheduler", "kube-controller-manager", "cluster-dns"]:
        assert f"[+]{component} ok" in body, body
    assert kite_server.curl("/readyz/kube-scheduler")[:2] == (200, "ok")
    for path in ["/livez", "/healthz", "/version"]:
        assert kite_server.curl(path)[0] == 200, path


def test_http2_and_http1_are_both_served(kite_server):
    kite_server.start()
    assert kite_server.curl("/version", "--http2")[2] == "2"
    assert kite_server.curl("/version", "--http1.1")[2] == "1.1"


def test_a_client_certificate_from_another_ca_is_rejected(kite_server, workdir):
    kite_server.start()
    key = os.path.join(workdir, "rogue.key")
    crt = os.path.join(workdir, "rogue.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN=system:admin/O=system:masters",
                    "-days", "1"], check=True, capture_output=True)
    out = subprocess.run(["curl", "-sS", "--cacert", kite_server.ca_path, "--cert", crt, "--key", key,
                          f"{kite_server.url}/api"], capture_output=True, text=True)
    # The handshake fails: a certificate is offered but does not chain to the client CA.
    assert out.returncode != 0 or '"code":401' in out.stdout.replace(" ", "")


def test_token_hash_is_the_sha256_of_the_kubeconfig_ca(kite_server):
    kite_server.start()
    token = open(os.path.join(kite_server.data_dir, "server", "token")).read().strip()
    m = re.fullmatch(r"K10([0-9a-f]{64})::server:(\S+)", token)
    assert m, token
    assert m.group(1) == hashlib.sha256(kite_server.kubeconfig_ca_pem()).hexdigest()
    assert m.group(1) == hashlib.sha256(open(kite_server.ca_path, "rb").read()).hexdigest()
    out = run_kite("token", "--data-dir", kite_server.data_dir)
    assert out.returncode == 0 and out.stdout.strip() == token


def test_token_flag_is_the_secret(kite_server):
    kite_server.start(["--token", "s3cret"])
    token = open(os.path.join(kite_server.data_dir, "server", "token")).read().strip()
    assert token.endswith("::server:s3cret")


def test_serving_certificate_has_every_san(kite_server):
    kite_server.start(["--tls-san", "kite.example.com", "--tls-san", "192.0.2.7",
                       "--node-name", "edge-1", "--node-ip", "10.11.12.13",
                       "--advertise-address", "10.11.12.14"])
    crt = os.path.join(kite_server.tls_dir, "serving-kube-apiserver.crt")
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", crt],
                          capture_output=True, text=True, check=True).stdout
    sans = set(s.strip() for s in text.splitlines()[1].split(","))
    hostname = os.uname().nodename.lower()
    expected = {
        "DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", f"DNS:{hostname}",
        "DNS:edge-1", "IP Address:10.11.12.13", "IP Address:10.11.12.14",
        "DNS:kite.example.com", "IP Address:192.0.2.7",
        "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local", "IP Address:10.43.0.1",
    }
    assert expected <= sans, f"missing: {expected - sans}"
    # The certificate on the wire is the one on disk, and it verifies for the SANs.
    code, _, _ = kite_server.curl("/version", "--resolve", f"kite.example.com:{kite_server.port}:127.0.0.1",
                                  "--connect-to", f"::127.0.0.1:{kite_server.port}")
    assert code == 200


def test_restart_keeps_the_ca_token_and_certificates(kite_server):
    kite_server.start()
    ca = open(kite_server.ca_path, "rb").read()
    token = open(os.path.join(kite_server.data_dir, "server", "token")).read()
    serving = open(os.path.join(kite_server.tls_dir, "serving-kube-apiserver.crt"), "rb").read()
    assert kite_server.stop() == 0
    kite_server.start()
    assert open(kite_server.ca_path, "rb").read() == ca
    assert open(os.path.join(kite_server.data_dir, "server", "token")).read() == token
    assert open(os.path.join(kite_server.tls_dir, "serving-kube-apiserver.crt"), "rb").read() == serving
    kite_server.kubectl("version")


def test_certificate_check_lists_expiry_dates(kite_server):
    kite_server.start()
    out = run_kite("certificate", "check", "--data-dir", kite_server.data_dir)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["FILE", "SUBJECT"]
    files = {line.split()[0] for line in lines[1:]}
    assert {"server-ca.crt", "client-ca.crt", "serving-kube-apiserver.crt", "client-admin.crt"} <= files
    assert all(re.search(r"\d{4}-\d{2}-\d{2}", line) for line in lines[1:])


def test_sigterm_shuts_down_cleanly(kite_server):
    kite_server.start()
    started = time.monotonic()
    assert kite_server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5


def test_config_file_supplies_flags_and_flags_win(workdir):
    server = KiteServer(workdir, port=7443)
    config = os.path.join(workdir, "config.yaml")
    with open(config, "w") as f:
        f.write("https-listen-port: 7443\ntls-san:\n  - from-config.example\ntoken: fromconfig\n")
    try:
        open(os.path.join(workdir, "no-config.yaml"), "w").close()
        server.log = open(server.log_path, "ab")
        args = [a if a != os.path.join(workdir, "no-config.yaml") else config for a in server.args()]
        # --https-listen-port 7443 on the command line; the config file says 7443 too,
        # and its token and tls-san must be applied.
        server.proc = subprocess.Popen(args, stdout=server.log, stderr=subprocess.STDOUT)
        server.wait_ready()
        token = open(os.path.join(server.data_dir, "server", "token")).read().strip()
        assert token.endswith("::server:fromconfig")
        crt = os.path.join(server.tls_dir, "serving-kube-apiserver.crt")
        text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", crt],
                              capture_output=True, text=True, check=True).stdout
        assert "DNS:from-config.example" in text
    finally:
        server.stop()


BAD_INPUT = [
    (["--cluster-cidr", "10.0.0/8"], "--cluster-cidr"),
    (["--service-cidr", "10.43.0.1/16"], "--service-cidr"),
    (["--https-listen-port", "0"], "--https-listen-port"),
    (["--https-listen-port", "70000"], "--https-listen-port"),
    (["--cluster-dns", "10.99.0.10"], "--cluster-dns"),
    (["--service-node-port-range", "32000-30000"], "--service-node-port-range"),
    (["--write-kubeconfig-mode", "999"], "--write-kubeconfig-mode"),
    (["--disable", "no-such-thing"], "--disable"),
    (["--node-name", "Bad_Name"], "--node-name"),
    (["--log-format", "xml"], "--log-format"),
    (["--datastore-endpoint", "mysql://x"], "--datastore-endpoint"),
    (["--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize("args,flag", BAD_INPUT, ids=[a[0][0] + "=" + (a[0][1] if len(a[0]) > 1 else "") for a in BAD_INPUT])
def test_invalid_flags_give_one_clear_line_and_fail(workdir, args, flag):
    open(os.path.join(workdir, "none.yaml"), "w").close()
    out = run_kite("server", "--data-dir", os.path.join(workdir, "d"), "-c", os.path.join(workdir, "none.yaml"),
                   "-o", os.path.join(workdir, "k.yaml"), *args)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert flag in lines[0], lines[0]
    assert not os.path.exists(os.path.join(workdir, "k.yaml"))


@pytest.mark.parametrize("content,needle", [
    (None, "cannot read"),
    ("no-such-key: 1\n", "unknown key \"no-such-key\""),
    ("https-listen-port: [\n", "not valid YAML"),
    ("https-listen-port: 0\n", "--https-listen-port"),
], ids=["missing", "unknown-key", "bad-yaml", "bad-value"])
def test_bad_config_files_give_one_clear_line_and_fail(workdir, content, needle):
    path = os.path.join(workdir, "config.yaml")
    if content is not None:
        with open(path, "w") as f:
            f.write(content)
    out = run_kite("server", "--data-dir", os.path.join(workdir, "d"), "--config", path)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert needle in lines[0], lines[0]


def test_a_directory_as_config_file_is_unreadable(workdir):
    out = run_kite("server", "--config", workdir)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1 and "--config" in out.stderr


def test_kite_version_and_help():
    out = run_kite("--version")
    assert out.returncode == 0 and out.stdout.startswith("kite v")
    assert "v1.33.0+kite" in out.stdout
    out = run_kite("server", "--help")
    assert out.returncode == 0
    for flag in ["--data-dir", "--https-listen-port", "--tls-san", "--write-kubeconfig-mode", "--cluster-cidr",
                 "--service-node-port-range", "--disable", "--datastore-endpoint", "--log-format", "KITE_TOKEN"]:
        assert flag in out.stdout, flag


def test_kite_kubectl_runs_kubectl_with_the_admin_kubeconfig(kite_server, workdir):
    kite_server.start()
    bindir = os.path.join(workdir, "bin")
    os.makedirs(bindir)
    os.symlink(kubectl_path(kubectl_versions()[-1]), os.path.join(bindir, "kubectl"))
    env = {"PATH": bindir + ":/usr/bin:/bin", "KUBECONFIG": kite_server.kubeconfig}
    out = run_kite("kubectl", "version", "-o", "json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["serverVersion"]["gitVersion"] == "v1.33.0+kite"
    out = run_kite("kubectl", "version", env={"PATH": "/nonexistent"})
    assert out.returncode != 0 and "no `kubectl` on PATH" in out.stderr


def test_agent_pins_the_server_ca_by_the_token_hash(kite_server):
    kite_server.start()
    token = open(os.path.join(kite_server.data_dir, "server", "token")).read().strip()
    wrong = "K10" + "0" * 64 + "::server:x"
    out = run_kite("agent", "--server", kite_server.url, "--token", wrong)
    assert out.returncode != 0 and "does not match the hash" in out.stderr, out.stderr
    out = run_kite("agent", "--server", kite_server.url, "--token", token)
    assert out.returncode != 0 and "does not match" not in out.stderr
