"""The download helper behind `vlprompt data download NAME --root $DATA`.

For each path a dataset needs (vlprompt.data.catalog), in the table's order:
- already there: left alone (so the command is idempotent and resumes after an interruption);
- copyable from elsewhere under the root (the ImageNet variants' classnames.txt): copied;
- downloadable: fetched once into <root>/.vlprompt-downloads/ through pooch (a direct URL, or Google
  Drive through gdown), its MD5 checked where the table knows it, archives extracted there by pooch's
  Untar/Unzip, and the member that becomes the path moved into place (nested archives in turn);
- not downloadable (licence, upstream gone): what to fetch by hand and where to put it is printed.

pooch verifies the hash, retries a failed transfer (RETRIES times) and moves a file into place only once
it is complete and verified. The bytes themselves stream into "<file>.part", which survives a failed or
interrupted transfer: the next attempt (a retry, or the next run of the command) asks the server for the
rest with an HTTP Range request. A download that completes with the wrong checksum is deleted. Extraction
happens in a staging folder marked complete at the end, so an interrupted run never leaves a half-made path.

`mirror` replaces every source with "<mirror>/<file name>" (a local server, an institutional mirror, or
a file:// folder holding the same files). Needs the `download` extra: pip install "vlprompt[download]".
"""
import hashlib
import logging
import os
import shutil
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from .catalog import CATALOG

STAGING = ".vlprompt-downloads"
RETRIES = 2  # further attempts after a failed transfer, each resuming the .part file
TIMEOUT = 60  # seconds without data before a connection counts as failed
CHUNK = 1 << 16  # bytes per write to the .part file (a cut connection loses at most the chunk in flight)
EXTRA_HINT = 'pip install "vlprompt[download]"'


class DownloadError(RuntimeError):
    pass


@dataclass
class DownloadResult:
    name: str
    done: list = field(default_factory=list)  # paths put in place now
    present: list = field(default_factory=list)  # paths that were already there
    manual: list = field(default_factory=list)  # (path, instructions) left to the user

    @property
    def complete(self):
        return not self.manual


def md5sum(path, chunk=1 << 20):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _pooch():
    try:
        import pooch
    except ImportError:
        raise DownloadError(f"Downloading datasets needs pooch, part of the download extra: {EXTRA_HINT}") from None
    pooch.get_logger().setLevel(logging.WARNING)  # our own lines say what is fetched and extracted
    return pooch


class ResumableDownloader:
    """A pooch downloader that streams into `part` and resumes it with an HTTP Range request.

    pooch calls it with a temporary output file; the completed `part` becomes that file, which pooch
    then verifies and renames. A failed transfer leaves `part` for the next attempt. `last_md5` is the
    MD5 of the last completed file (for the error message when it does not match).
    """

    def __init__(self, part, timeout=TIMEOUT):
        self.part = part
        self.timeout = timeout
        self.last_md5 = None

    def __call__(self, url, output_file, pooch_instance=None):
        if url.startswith("file://"):
            shutil.copyfile(urllib.request.url2pathname(urllib.parse.urlparse(url).path), self.part)
        else:
            self._http(url)
        self.last_md5 = md5sum(self.part)
        os.replace(self.part, output_file)

    def _http(self, url):
        import requests

        from vlprompt.progress import progress

        have = os.path.getsize(self.part) if os.path.isfile(self.part) else 0
        headers = {"User-Agent": "vlprompt-data-download", "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if have and response.status_code == 416:  # nothing after `have`: the part is complete or stale
                total = response.headers.get("Content-Range", "").rpartition("/")[2]
                if total == str(have):
                    return
                os.remove(self.part)
                return self._http(url)
            if 400 <= response.status_code < 500:  # not worth a retry
                raise DownloadError(f"HTTP {response.status_code} {response.reason}")
            response.raise_for_status()
            resumed = response.status_code == 206 and response.headers.get("Content-Range", "").startswith(
                f"bytes {have}-")
            start = have if resumed else 0
            if have:
                print(f"  resuming at {have / 2**20:,.1f} MiB" if resumed else "  the server cannot resume: "
                      "starting again", flush=True)
            length = response.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else None
            name = os.path.basename(self.part)[:-len(".part")]
            with open(self.part, "ab" if resumed else "wb") as f, \
                    progress(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024) as bar:
                bar.update(start)
                for block in response.iter_content(CHUNK):
                    f.write(block)
                    bar.update(len(block))


def _gdrive_get(file_id, dest):
    try:
        import gdown
    except ImportError:
        raise DownloadError(f"Downloading from Google Drive needs gdown, part of the download extra: "
                            f"{EXTRA_HINT}") from None
    result = gdown.download(id=file_id, output=dest, quiet=False)
    if not result or not os.path.isfile(dest):
        raise DownloadError(f"gdown could not download the Google Drive file {file_id} (quota exceeded or access "
                            f"denied?); fetch https://drive.google.com/file/d/{file_id}/view in a browser instead")


def fetch(resource, staging, mirror=None, retries=RETRIES):
    """The resource as a verified local file in `staging` (downloaded unless a verified copy is there)."""
    path = os.path.join(staging, resource.filename)
    if os.path.isfile(path) and (not resource.md5 or md5sum(path) == resource.md5):
        print(f"Using the downloaded {path}")
        return path
    os.makedirs(staging, exist_ok=True)
    source = f"{mirror.rstrip('/')}/{resource.filename}" if mirror else resource.where
    print(f"Downloading {resource.filename} from {source}", flush=True)
    if not mirror and not resource.url:  # Google Drive: gdown, as before
        part = path + ".part"
        try:
            _gdrive_get(resource.gdrive_id, part)
        except DownloadError:
            raise
        except Exception as e:  # gdown's own errors
            raise DownloadError(f"Could not download {resource.filename} from {source}: {type(e).__name__}: "
                                f"{e}") from None
        actual = md5sum(part) if resource.md5 else None
        if actual and actual != resource.md5:
            os.remove(part)
            raise _checksum_error(resource, source, actual)
        os.replace(part, path)
        return path

    pooch = _pooch()
    known_hash = f"md5:{resource.md5}" if resource.md5 else None
    store = pooch.create(path=staging, base_url="", registry={resource.filename: known_hash},
                         urls={resource.filename: source}, retry_if_failed=retries)
    downloader = ResumableDownloader(path + ".part")
    try:
        return store.fetch(resource.filename, downloader=downloader)
    except ValueError as e:
        if downloader.last_md5 and resource.md5 and downloader.last_md5 != resource.md5:
            raise _checksum_error(resource, source, downloader.last_md5) from None
        raise DownloadError(f"Could not download {resource.filename} from {source}: {e}") from None
    except DownloadError as e:
        raise DownloadError(f"Could not download {resource.filename} from {source}: {e}") from None
    except Exception as e:  # connection errors after the last retry; the .part file stays for the next run
        kept = os.path.getsize(downloader.part) if os.path.isfile(downloader.part) else 0
        resume = f" ({kept:,} bytes kept in {downloader.part}: run again to resume)" if kept else ""
        raise DownloadError(f"Could not download {resource.filename} from {source}: {type(e).__name__}: "
                            f"{e}{resume}") from None


def _checksum_error(resource, source, actual):
    return DownloadError(f"{resource.filename} from {source} has MD5 {actual}, expected {resource.md5}: the "
                         "download is corrupt or the file changed upstream (it was deleted; run again)")


def _check_tar_members(archive, dest):
    """Where tarfile has no extraction filter (older Pythons), refuse members that would land outside."""
    if hasattr(tarfile, "data_filter"):
        return
    with tarfile.open(archive, "r:*") as tf:
        for member in tf.getmembers():
            target = os.path.realpath(os.path.join(dest, member.name))
            if not target.startswith(os.path.realpath(dest) + os.sep) or member.issym() or member.islnk():
                raise DownloadError(f"{archive}: refusing to extract {member.name!r}")


def extracted(archive):
    """The folder holding the archive's content (extracted once by pooch; a marker file records completion)."""
    dest = archive + ".d"
    marker = os.path.join(dest, ".complete")
    if not os.path.exists(marker):
        pooch = _pooch()
        if os.path.exists(dest):
            shutil.rmtree(dest)
        print(f"Extracting {os.path.basename(archive)}", flush=True)
        os.makedirs(dest)
        if archive.endswith(".zip"):
            pooch.Unzip(extract_dir=dest)(archive, "download", None)
        else:
            _check_tar_members(archive, dest)
            pooch.Untar(extract_dir=dest)(archive, "download", None)
        open(marker, "w").close()
    return dest


def find_member(folder, member, max_depth=3):
    """The shallowest path under `folder` that is `member` or ends with "/<member>" (archives differ in
    whether they wrap their content in a top folder)."""
    level = [folder]
    for _ in range(max_depth + 1):
        for directory in level:
            candidate = os.path.join(directory, member)
            if os.path.exists(candidate):
                return candidate
        level = [os.path.join(d, e) for d in level for e in sorted(os.listdir(d))
                 if os.path.isdir(os.path.join(d, e)) and not e.startswith(".")]
    raise DownloadError(f"{member} not found in the extracted archive {folder} (the archive's layout changed?)")


def _place(entry, source_path, dest):
    """Put the entry's file or folder at dest from the fetched resource (extracting as needed)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if not entry.resource.is_archive:
        shutil.copy2(source_path, dest + ".part")
        os.replace(dest + ".part", dest)
        return
    folder = extracted(source_path)
    for member in entry.extract[:-1]:  # nested archives
        folder = extracted(find_member(folder, member))
    shutil.move(find_member(folder, entry.extract[-1]), dest)


def download(name, root, mirror=None, keep_archives=False, catalog=None):
    """Fetch what dataset `name` needs into `root`; a DownloadResult (what is left to do by hand)."""
    info = (catalog or CATALOG).get(name)
    if info is None:
        raise DownloadError(f"No download recipe for {name!r}; known: {', '.join(catalog or CATALOG)}")
    root = os.path.abspath(os.path.expanduser(root))
    os.makedirs(root, exist_ok=True)
    staging = os.path.join(root, STAGING)
    result = DownloadResult(name)
    fetched = {}
    for entry in info.entries:
        dest = os.path.join(root, info.folder, entry.path)
        if os.path.exists(dest):
            result.present.append(dest)
            continue
        if entry.copy_from and os.path.isfile(os.path.join(root, entry.copy_from)):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(os.path.join(root, entry.copy_from), dest)
            print(f"Copied {entry.copy_from} to {dest}")
            result.done.append(dest)
            continue
        if entry.resource is None:
            result.manual.append((dest, entry.manual.format(dest=dest)))
            continue
        if entry.resource.filename not in fetched:
            fetched[entry.resource.filename] = fetch(entry.resource, staging, mirror)
        _place(entry, fetched[entry.resource.filename], dest)
        print(f"Put {entry.path} at {dest}")
        result.done.append(dest)
    if not keep_archives and os.path.isdir(staging):
        for filename in fetched:
            for path in (os.path.join(staging, filename), os.path.join(staging, filename + ".d")):
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.exists(path):
                    os.remove(path)
        if not os.listdir(staging):
            os.rmdir(staging)
    return result


def format_result(result):
    lines = []
    for path in result.present:
        lines.append(f"  present:    {path}")
    for path in result.done:
        lines.append(f"  downloaded: {path}")
    for path, text in result.manual:
        lines.append(f"  BY HAND:    {path}\n              {text}")
    status = "complete" if result.complete else f"{len(result.manual)} item(s) to fetch by hand (see above)"
    return f"{result.name}: {status}\n" + "\n".join(lines)
