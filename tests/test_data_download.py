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
from vlprompt.data.catalog import CATALOG
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


class Server:
    def __init__(self, directory):
        self.directory = directory
        self.requests = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                server.requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=str(directory)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


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
