"""The download helper behind `vlprompt data download NAME --root $DATA`.

For each path a dataset needs (vlprompt.data.catalog), in the table's order:
- already there: left alone (so the command is idempotent and resumes after an interruption);
- copyable from elsewhere under the root (the ImageNet variants' classnames.txt): copied;
- downloadable: fetched once into <root>/.vlprompt-downloads/ (a direct URL, or Google Drive through
  gdown), its MD5 checked where the table knows it, archives extracted there, and the member that
  becomes the path moved into place (nested archives are extracted in turn);
- not downloadable (licence, upstream gone): what to fetch by hand and where to put it is printed.
Partial downloads are written to "<file>.part" and renamed when complete; extraction happens in a
staging folder and the result is moved into place, so an interrupted run never leaves a half-made path.

`mirror` replaces every source with "<mirror>/<file name>" (a local server, an institutional mirror, or
a file:// folder holding the same files).
"""
import hashlib
import os
import shutil
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass, field

from .catalog import CATALOG

STAGING = ".vlprompt-downloads"


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


def _http_get(url, dest, timeout=60):
    request = urllib.request.Request(url, headers={"User-Agent": "vlprompt-data-download"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as f:
        total = int(response.headers.get("Content-Length") or 0)
        done, last = 0, -1
        for block in iter(lambda: response.read(1 << 20), b""):
            f.write(block)
            done += len(block)
            if total and done * 10 // total != last:
                last = done * 10 // total
                print(f"  {done / 2**20:,.1f} / {total / 2**20:,.1f} MiB", flush=True)


def _gdrive_get(file_id, dest):
    try:
        import gdown
    except ImportError:
        raise DownloadError("Downloading from Google Drive needs gdown: pip install gdown") from None
    result = gdown.download(id=file_id, output=dest, quiet=False)
    if not result or not os.path.isfile(dest):
        raise DownloadError(f"gdown could not download the Google Drive file {file_id} (quota exceeded or access "
                            f"denied?); fetch https://drive.google.com/file/d/{file_id}/view in a browser instead")


def fetch(resource, staging, mirror=None):
    """The resource as a verified local file in `staging` (downloaded unless a verified copy is there)."""
    path = os.path.join(staging, resource.filename)
    if os.path.isfile(path) and (not resource.md5 or md5sum(path) == resource.md5):
        print(f"Using the downloaded {path}")
        return path
    os.makedirs(staging, exist_ok=True)
    part = path + ".part"
    source = f"{mirror.rstrip('/')}/{resource.filename}" if mirror else resource.where
    print(f"Downloading {resource.filename} from {source}")
    try:
        if mirror or resource.url:
            _http_get(source, part)
        else:
            _gdrive_get(resource.gdrive_id, part)
    except Exception as e:
        if os.path.exists(part):
            os.remove(part)
        if isinstance(e, DownloadError):
            raise
        raise DownloadError(f"Could not download {resource.filename} from {source}: {type(e).__name__}: {e}") from None
    if resource.md5:
        actual = md5sum(part)
        if actual != resource.md5:
            os.remove(part)
            raise DownloadError(f"{resource.filename} from {source} has MD5 {actual}, expected {resource.md5}: the "
                                "download is corrupt or the file changed upstream (it was deleted; run again)")
    os.replace(part, path)
    return path


def _safe_extract(archive, dest):
    if archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                target = os.path.realpath(os.path.join(dest, member))
                if not target.startswith(os.path.realpath(dest) + os.sep) and target != os.path.realpath(dest):
                    raise DownloadError(f"{archive}: refusing to extract {member!r} outside {dest}")
            zf.extractall(dest)
    else:
        with tarfile.open(archive, "r:*") as tf:
            try:
                tf.extractall(dest, filter="data")
            except TypeError:  # Python without extraction filters
                for member in tf.getmembers():
                    target = os.path.realpath(os.path.join(dest, member.name))
                    if not target.startswith(os.path.realpath(dest) + os.sep) or member.issym() or member.islnk():
                        raise DownloadError(f"{archive}: refusing to extract {member.name!r}")
                tf.extractall(dest)


def extracted(archive):
    """The folder holding the archive's content (extracted once; a marker file records completion)."""
    dest = archive + ".d"
    marker = os.path.join(dest, ".complete")
    if not os.path.exists(marker):
        if os.path.exists(dest):
            shutil.rmtree(dest)
        print(f"Extracting {os.path.basename(archive)}")
        os.makedirs(dest)
        _safe_extract(archive, dest)
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
