"""The download helper, offline: archives built from generated trees in the upstream archives' layout are
served by a local HTTP server on 127.0.0.1 (`--mirror`), and any other connection fails the test."""
import dataclasses
import functools
import hashlib
import http.server
import os
import shutil
import socket
import tarfile
import threading
import zipfile

import pytest

from dataset_fixtures import read, tuples
from vlprompt.cli import main
from vlprompt.data import download as dl
from vlprompt.data.catalog import CATALOG, Resource
from vlprompt.testing.fake_data import make_dataset


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Nothing in these tests may reach beyond 127.0.0.1."""
    real_connect = socket.socket.connect

    def connect(self, address):
        if not (isinstance(address, tuple) and address[0] in ("127.0.0.1", "localhost")):
            raise AssertionError(f"network access attempted: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


class LocalHTTPServer:
    """An HTTP server on 127.0.0.1 (a free port) in a daemon thread; `url`, `close()`."""

    def serve(self, handler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Server(LocalHTTPServer):
    def __init__(self, directory):
        self.directory = directory
        self.requests = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                server.requests.append(self.path)

        self.serve(functools.partial(Handler, directory=str(directory)))


@pytest.fixture
def server(tmp_path):
    files = tmp_path / "served"
    files.mkdir()
    srv = Server(files)
    yield srv
    srv.close()


def md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def tar_gz(dest, members):
    """members: {name in archive: path on disk}."""
    with tarfile.open(dest, "w:gz" if str(dest).endswith("gz") else "w") as tf:
        for arcname, path in members.items():
            tf.add(path, arcname=arcname)
    return dest


def catalog_for(served, name):
    """The real recipe for `name`, with each known MD5 replaced by that of the served stand-in file."""
    info = CATALOG[name]
    entries = []
    for e in info.entries:
        if e.resource is not None and e.resource.md5:
            e = dataclasses.replace(e, resource=dataclasses.replace(
                e.resource, md5=md5(os.path.join(served, e.resource.filename))))
        entries.append(e)
    return {name: dataclasses.replace(info, entries=tuple(entries))}


def reroot(expected, old, new):
    return {k: None if v is None else [(p.replace(old, new, 1), y, c) for p, y, c in v] for k, v in expected.items()}


def serve_pets(served, src):
    spec = make_dataset("OxfordPets", src)
    tar_gz(served / "images.tar.gz", {"images": os.path.join(spec.dataset_dir, "images")})
    extra = src / "list.txt"
    extra.write_text("#Image CLASS-ID SPECIES BREED ID\n")
    tar_gz(served / "annotations.tar.gz", {"annotations/trainval.txt": os.path.join(spec.dataset_dir, "annotations",
                                                                                     "trainval.txt"),
                                           "annotations/test.txt": os.path.join(spec.dataset_dir, "annotations",
                                                                                 "test.txt"),
                                           "annotations/list.txt": extra})
    shutil.copy(spec.split_file, served / "split_zhou_OxfordPets.json")
    return spec


def test_download_extracts_into_the_expected_layout_and_is_idempotent(server, tmp_path):
    spec = serve_pets(server.directory, tmp_path / "src")
    root = tmp_path / "data"
    catalog = catalog_for(server.directory, "OxfordPets")
    result = dl.download("OxfordPets", root, mirror=server.url, catalog=catalog)
    assert result.complete and len(result.done) == 4
    assert sorted(server.requests) == ["/annotations.tar.gz", "/images.tar.gz", "/split_zhou_OxfordPets.json"]
    assert not os.path.exists(root / dl.STAGING)  # archives removed after extraction
    ds = read(str(root), "OxfordPets")
    want = reroot(spec.expected, spec.root, str(root))
    assert [tuples(ds.train_x), tuples(ds.val), tuples(ds.test)] == [want["train"], want["val"], want["test"]]

    again = dl.download("OxfordPets", root, mirror=server.url, catalog=catalog)
    assert again.complete and not again.done and len(again.present) == 4
    assert len(server.requests) == 3  # nothing fetched the second time


def test_nested_archive_and_renamed_folder(server, tmp_path):
    """Caltech101: caltech-101.zip holds 101_ObjectCategories.tar.gz. FGVC: keep data/ as fgvc_aircraft/."""
    src = tmp_path / "src"
    caltech = make_dataset("Caltech101", src)
    inner = tar_gz(tmp_path / "101_ObjectCategories.tar.gz", {"101_ObjectCategories": caltech.image_dir})
    with zipfile.ZipFile(server.directory / "caltech-101.zip", "w") as zf:
        zf.write(inner, "caltech-101/101_ObjectCategories.tar.gz")
        zf.writestr("caltech-101/show_annotation.m", "% unused\n")
    shutil.copy(caltech.split_file, server.directory / "split_zhou_Caltech101.json")
    aircraft = make_dataset("FGVCAircraft", src)
    tar_gz(server.directory / "fgvc-aircraft-2013b.tar.gz", {"fgvc-aircraft-2013b/data": aircraft.dataset_dir,
                                                             "fgvc-aircraft-2013b/README.md": caltech.split_file})
    root = tmp_path / "data"
    for name, spec in (("Caltech101", caltech), ("FGVCAircraft", aircraft)):
        result = dl.download(name, root, mirror=server.url, catalog=catalog_for(server.directory, name))
        assert result.complete
        ds = read(str(root), name)
        want = reroot(spec.expected, spec.root, str(root))
        assert [tuples(ds.train_x), tuples(ds.val), tuples(ds.test)] == [want["train"], want["val"], want["test"]]
    assert server.requests.count("/fgvc-aircraft-2013b.tar.gz") == 1  # one archive for five paths
    # Only what the reader uses is moved out of data/ (families.txt stays behind).
    assert sorted(os.listdir(root / "fgvc_aircraft")) == [
        "images", "images_variant_test.txt", "images_variant_train.txt", "images_variant_val.txt", "variants.txt"]


def test_checksum_mismatch_is_refused_and_nothing_is_left(server, tmp_path):
    serve_pets(server.directory, tmp_path / "src")
    root = tmp_path / "data"
    with pytest.raises(dl.DownloadError) as err:  # the real MD5s do not match the stand-in archives
        dl.download("OxfordPets", root, mirror=server.url)
    message = str(err.value)
    assert "images.tar.gz" in message and f"expected {CATALOG['OxfordPets'].entries[0].resource.md5}" in message
    assert md5(server.directory / "images.tar.gz") in message
    assert not os.path.exists(root / "oxford_pets" / "images")
    assert os.listdir(root / dl.STAGING) == []  # the corrupt download and its .part are gone


def test_a_verified_archive_left_by_an_interrupted_run_is_reused(server, tmp_path):
    serve_pets(server.directory, tmp_path / "src")
    root = tmp_path / "data"
    (root / dl.STAGING).mkdir(parents=True)
    shutil.copy(server.directory / "images.tar.gz", root / dl.STAGING / "images.tar.gz")
    (root / dl.STAGING / "annotations.tar.gz.part").write_bytes(b"half a file")
    result = dl.download("OxfordPets", root, mirror=server.url, catalog=catalog_for(server.directory, "OxfordPets"))
    assert result.complete
    assert "/images.tar.gz" not in server.requests and "/annotations.tar.gz" in server.requests


def test_classnames_copied_from_imagenet_or_downloaded(server, tmp_path):
    spec = make_dataset("ImageNetA", tmp_path / "src")
    tar_gz(server.directory / "imagenet-a.tar", {"imagenet-a": spec.image_dir})
    shutil.copy(os.path.join(spec.dataset_dir, "classnames.txt"), server.directory / "classnames.txt")
    root = tmp_path / "data"
    result = dl.download("ImageNetA", root, mirror=server.url)  # no MD5 known for these files
    assert result.complete and "/classnames.txt" in server.requests
    ds = read(str(root), "ImageNetA")
    assert tuples(ds.test) == reroot(spec.expected, spec.root, str(root))["test"]

    other = tmp_path / "other"
    (other / "imagenet").mkdir(parents=True)
    (other / "imagenet" / "classnames.txt").write_text("n01440764 tench\n")
    server.requests.clear()
    dl.download("ImageNetA", other, mirror=server.url)
    assert server.requests == ["/imagenet-a.tar"]
    assert (other / "imagenet-adversarial" / "classnames.txt").read_text() == "n01440764 tench\n"


def test_manual_steps_are_printed_with_their_destination(server, tmp_path, capsys):
    shutil.copy(make_dataset("StanfordCars", tmp_path / "src").split_file, server.directory)
    root = tmp_path / "data"
    status = main(["data", "download", "StanfordCars", "--root", str(root), "--mirror", server.url])
    out = capsys.readouterr().out
    assert status == 2
    assert os.path.isfile(root / "stanford_cars" / "split_zhou_StanfordCars.json")
    for path in ("cars_train", "cars_test"):
        dest = str(root / "stanford_cars" / path)
        assert f"BY HAND:    {dest}" in out and f"put it at {dest} (extracted)" in out
    assert "cars_train.tgz" in out and "offline" in out
    assert f"Next: vlprompt data check --root {root} StanfordCars" in out


def test_imagenet_licence_is_explained(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_gdown(id=None, output=None, quiet=False, **kwargs):
        calls.append(id)
        with open(output, "w") as f:
            f.write("n01440764 tench\n")
        return output

    import gdown
    monkeypatch.setattr(gdown, "download", fake_gdown)
    root = tmp_path / "data"
    assert main(["data", "download", "ImageNet", "--root", str(root)]) == 2
    assert calls == ["1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF"]  # classnames.txt from CoOp's Google Drive
    out = capsys.readouterr().out
    assert "ImageNet's licence does not allow automatic downloads" in out
    assert str(root / "imagenet" / "images" / "train") in out and "ILSVRC2012_img_val.tar" in out


def test_failed_download_names_the_source(server, tmp_path, capsys):
    status = main(["data", "download", "DescribableTextures", "--root", str(tmp_path / "data"), "--mirror",
                   server.url])
    assert status == 1
    err = capsys.readouterr().err
    assert f"Could not download dtd-r1.0.1.tar.gz from {server.url}/dtd-r1.0.1.tar.gz" in err and "404" in err


# ------------------------------------------------------------------ resume, retries, progress (pooch)
class FlakyServer(LocalHTTPServer):
    """Serves one file at /big.bin, honouring `Range: bytes=N-` with a 206. The first len(`drops`)
    requests are cut off: the headers promise the whole (remaining) file, then the connection closes
    once the file's first drops[i] bytes have been sent. `seen` records each request's Range header."""

    def __init__(self, payload, drops=()):
        self.payload = payload
        self.drops = list(drops)
        self.seen = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/big.bin":
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                server.seen.append(rng)
                start = int(rng[len("bytes="):-1]) if rng else 0
                body = server.payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if server.drops:
                    cut = server.drops.pop(0)
                    self.wfile.write(server.payload[start:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.serve(Handler)


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def flaky():
    servers = []

    def start(drops=()):
        servers.append(FlakyServer(PAYLOAD, drops))
        return servers[-1]

    yield start
    for srv in servers:
        srv.close()


@pytest.fixture
def waits(monkeypatch):
    """pooch waits 1 s, 2 s, ... between retries: record the waits instead of sleeping."""
    import types

    import pooch.core

    recorded = []
    monkeypatch.setattr(pooch.core, "time", types.SimpleNamespace(sleep=recorded.append))
    return recorded


def big(md5=PAYLOAD_MD5):
    return Resource("big.bin", url="http://upstream.invalid/big.bin", md5=md5)


def test_an_interrupted_download_keeps_its_part_and_the_next_run_resumes(flaky, tmp_path, waits):
    srv = flaky(drops=[5 * dl.CHUNK])
    staging = str(tmp_path / "staging")
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch(big(), staging, mirror=srv.url, retries=0)
    part = os.path.join(staging, "big.bin.part")
    assert f"({5 * dl.CHUNK:,} bytes kept in {part}: run again to resume)" in str(err.value)
    assert open(part, "rb").read() == PAYLOAD[:5 * dl.CHUNK]
    assert not os.path.exists(os.path.join(staging, "big.bin"))

    path = dl.fetch(big(), staging, mirror=srv.url, retries=0)
    assert srv.seen == [None, f"bytes={5 * dl.CHUNK}-"]
    assert path == os.path.join(staging, "big.bin") and dl.md5sum(path) == PAYLOAD_MD5
    assert sorted(os.listdir(staging)) == ["big.bin"]  # the part became the file; no temporary left
    assert waits == []


def test_retries_resume_where_the_last_attempt_stopped(flaky, tmp_path, waits, capsys):
    srv = flaky(drops=[2 * dl.CHUNK, 11 * dl.CHUNK])
    path = dl.fetch(big(), str(tmp_path), mirror=srv.url, retries=2)
    assert srv.seen == [None, f"bytes={2 * dl.CHUNK}-", f"bytes={11 * dl.CHUNK}-"]
    assert dl.md5sum(path) == PAYLOAD_MD5 and waits == [1, 2]
    out, err = capsys.readouterr()
    assert "resuming at 0.1 MiB" in out and "resuming at 0.7 MiB" in out  # 2 and 11 chunks of 64 KiB
    assert err == ""  # not a terminal: no progress bar in the log


def test_a_resumed_file_with_the_wrong_checksum_is_fetched_again_whole(flaky, tmp_path, waits):
    """A .part from another version of the file: the resumed result fails the MD5, is deleted, and the
    retry downloads the whole file."""
    srv = flaky()
    (tmp_path / "big.bin.part").write_bytes(b"\xff" * 5000)
    path = dl.fetch(big(), str(tmp_path), mirror=srv.url, retries=1)
    assert srv.seen == ["bytes=5000-", None]
    assert dl.md5sum(path) == PAYLOAD_MD5 and waits == [1]


def test_a_wrong_checksum_after_every_attempt_is_an_error_and_nothing_is_kept(flaky, tmp_path, waits):
    srv = flaky()
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch(big(md5="0" * 32), str(tmp_path), mirror=srv.url, retries=1)
    assert str(err.value) == (f"big.bin from {srv.url}/big.bin has MD5 {PAYLOAD_MD5}, expected {'0' * 32}: the "
                              "download is corrupt or the file changed upstream (it was deleted; run again)")
    assert srv.seen == [None, None] and os.listdir(tmp_path) == []


def test_a_missing_file_is_not_retried(flaky, tmp_path, waits):
    srv = flaky()
    missing = Resource("nothing.bin", url="http://upstream.invalid/nothing.bin")
    with pytest.raises(dl.DownloadError, match=r"^Could not download nothing\.bin from .*/nothing\.bin: HTTP 404"):
        dl.fetch(missing, str(tmp_path), mirror=srv.url, retries=3)
    assert waits == [] and os.listdir(tmp_path) == []


def test_progress_bars_only_on_a_terminal(monkeypatch):
    from vlprompt.progress import progress, progress_enabled

    class Terminal:
        def isatty(self):
            return True

    monkeypatch.delenv("VLPROMPT_PROGRESS", raising=False)
    assert progress_enabled(Terminal()) and not progress_enabled(open(os.devnull, "w"))
    assert progress(range(3)).disable  # pytest's captured stderr is not a terminal
    monkeypatch.setenv("VLPROMPT_PROGRESS", "1")
    assert not progress(range(3)).disable and progress(range(3), min_items=5).disable
    monkeypatch.setenv("VLPROMPT_PROGRESS", "0")
    assert not progress_enabled(Terminal())
