#!/usr/bin/env bash
# Builds a busybox image tarball from Debian's busybox-static, with no registry
# and no network beyond apt: the image kite's tests run and a template for
# your own airgap bundles. See airgap/README.md.
#
#   airgap/build-busybox-image.sh OUT.tar [--format docker-archive|oci]
#                                         [--name busybox:latest] [--busybox PATH]
#
# The output is deterministic: the same busybox binary gives the same bytes
# (every mtime is SOURCE_DATE_EPOCH, 0 unless set; owners are root).
set -euo pipefail

usage() {
  sed -n '6,7p' "$0" | sed 's/^# \{0,3\}//' >&2
  exit 2
}

out=""
format="docker-archive"
name="busybox:latest"
busybox="/bin/busybox"
while [ $# -gt 0 ]; do
  case "$1" in
    --format) format="${2:?--format needs a value}"; shift 2 ;;
    --format=*) format="${1#*=}"; shift ;;
    --name) name="${2:?--name needs a value}"; shift 2 ;;
    --name=*) name="${1#*=}"; shift ;;
    --busybox) busybox="${2:?--busybox needs a value}"; shift 2 ;;
    --busybox=*) busybox="${1#*=}"; shift ;;
    -h|--help) usage ;;
    -*) echo "build-busybox-image.sh: unknown flag $1" >&2; usage ;;
    *) [ -z "$out" ] || usage; out="$1"; shift ;;
  esac
done
[ -n "$out" ] || usage
case "$format" in docker-archive|oci) ;; *)
  echo "build-busybox-image.sh: --format must be docker-archive or oci, not $format" >&2; exit 2 ;;
esac

if [ ! -x "$busybox" ] && [ "$busybox" = /bin/busybox ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build-busybox-image.sh: installing busybox-static" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
  fi
fi
if [ ! -x "$busybox" ]; then
  echo "build-busybox-image.sh: $busybox not found; install Debian's busybox-static" >&2
  exit 1
fi
# A dynamically linked busybox would need its libraries in the image.
if command -v file >/dev/null && file -L "$busybox" | grep -q 'dynamically linked'; then
  echo "build-busybox-image.sh: $busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi

case "$(uname -m)" in
  x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; armv7l|armv6l) arch=arm ;;
  i?86) arch=386 ;; riscv64) arch=riscv64 ;; ppc64le) arch=ppc64le ;; s390x) arch=s390x ;;
  *) arch="$(uname -m)" ;;
esac

applets="$("$busybox" --list)"
BUSYBOX="$busybox" APPLETS="$applets" ARCH="$arch" FORMAT="$format" NAME="$name" OUT="$out" \
  EPOCH="${SOURCE_DATE_EPOCH:-0}" exec python3 - <<'PY'
import gzip, hashlib, io, json, os, tarfile, tempfile

busybox, fmt, name, out = os.environ["BUSYBOX"], os.environ["FORMAT"], os.environ["NAME"], os.environ["OUT"]
arch, epoch = os.environ["ARCH"], int(os.environ["EPOCH"])
applets = sorted(set(a for a in os.environ["APPLETS"].split() if a and "/" not in a and a != "busybox"))

def sha(data):
    return hashlib.sha256(data).hexdigest()

def add(tar, path, kind, mode, data=b"", target=""):
    info = tarfile.TarInfo(path)
    info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "root", "root"
    info.mode = mode
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif kind == "link":
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

def build_layer():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ["bin", "dev", "etc", "home", "proc", "root", "sys", "usr", "usr/bin", "usr/sbin",
                  "sbin", "var", "var/www"]:
            add(tar, d, "dir", 0o755)
        add(tar, "tmp", "dir", 0o1777)
        with open(busybox, "rb") as f:
            add(tar, "bin/busybox", "file", 0o755, f.read())
        for applet in applets:
            add(tar, f"bin/{applet}", "link", 0o777, target="busybox")
        add(tar, "etc/passwd", "file", 0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
        add(tar, "etc/group", "file", 0o644, b"root:x:0:\nnogroup:x:65534:\n")
        add(tar, "var/www/index.html", "file", 0o644, b"<h1>hello from busybox httpd</h1>\n")
    return buf.getvalue()

layer = build_layer()
diff_id = "sha256:" + sha(layer)
created = "1970-01-01T00:00:00Z" if epoch == 0 else __import__("datetime").datetime.fromtimestamp(
    epoch, __import__("datetime").timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
config = {
    "architecture": arch,
    "os": "linux",
    "created": created,
    "config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
        "WorkingDir": "/",
    },
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": created, "created_by": "airgap/build-busybox-image.sh (Debian busybox-static)"}],
}
config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()

# Docker-style short name -> repository/tag for the image's tag and annotations.
def normalise(ref):
    tag = "latest"
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    parts = ref.split("/")
    if len(parts) == 1 or not ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        domain, path = "docker.io", ref
    else:
        domain, path = parts[0], "/".join(parts[1:])
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    return f"{domain}/{path}", tag

repo, tag = normalise(name)
short = repo[len("docker.io/library/"):] if repo.startswith("docker.io/library/") else \
    repo[len("docker.io/"):] if repo.startswith("docker.io/") else repo

def write_outer(members):
    tmp = tempfile.NamedTemporaryFile(dir=os.path.dirname(os.path.abspath(out)) or ".", delete=False)
    with tarfile.open(fileobj=tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path, data in members:
            parent = os.path.dirname(path)
            chain = []
            while parent and parent not in dirs:
                chain.append(parent)
                dirs.add(parent)
                parent = os.path.dirname(parent)
            for d in reversed(chain):
                add(tar, d, "dir", 0o755)
            add(tar, path, "file", 0o644, data)
    tmp.close()
    os.replace(tmp.name, out)

if fmt == "docker-archive":
    layer_id = sha(layer)
    manifest = [{"Config": f"{sha(config_bytes)}.json", "RepoTags": [f"{short}:{tag}"],
                 "Layers": [f"{layer_id}/layer.tar"]}]
    write_outer([
        (f"{layer_id}/VERSION", b"1.0"),
        (f"{layer_id}/layer.tar", layer),
        (f"{sha(config_bytes)}.json", config_bytes),
        ("manifest.json", json.dumps(manifest, separators=(",", ":")).encode()),
        ("repositories", json.dumps({short: {tag: layer_id}}, separators=(",", ":")).encode()),
    ])
else:
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=6) as g:
        g.write(layer)
    layer_gz = gz.getvalue()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + sha(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + sha(layer_gz), "size": len(layer_gz)}],
    }
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + sha(manifest_bytes), "size": len(manifest_bytes),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"io.containerd.image.name": f"{repo}:{tag}",
                            "org.opencontainers.image.ref.name": tag},
        }],
    }
    write_outer([
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ("index.json", json.dumps(index, separators=(",", ":")).encode()),
        ("blobs/sha256/" + sha(config_bytes), config_bytes),
        ("blobs/sha256/" + sha(layer_gz), layer_gz),
        ("blobs/sha256/" + sha(manifest_bytes), manifest_bytes),
    ])
print(f"{out}: {fmt} image {repo}:{tag} ({len(applets)} applets, {os.path.getsize(out)} bytes)")
PY
