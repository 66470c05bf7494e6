"""Issue 24, item 1: `verify` says VERIFIED only against a key the user trusts.

Against a package made by the code before issue 24 (tests/data/legacy-package.zip, old
signed-JSON records), and forgeries of it re-signed with a fresh key: no anchor, a short
prefix, an empty prefix, the right whole fingerprint, the right key file.
"""

from __future__ import annotations

import hashlib
import json
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from ev_ingest.store.signing import PACKAGE_INDEX, Signer, public_pem
from pipelines.cli.main import main
from tests import zipkit

LEGACY = Path(__file__).parent / "data" / "legacy-package.zip"
LEGACY_FINGERPRINT = "f5943c4a0f86ff04609331d75d45c5558c2e8fe7d8ffd405422c7c459fcf9068"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def rewrite(source: Path, target: Path, change) -> Path:
    """A copy of the package with each member's bytes passed through `change(name, data)`
    (None drops it); extra members come from `change("", None)` as (name, data) pairs."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are one of the attacks
        for item in old.infolist():
            data = change(item.filename, old.read(item.filename))
            if data is not None:
                new.writestr(item.filename, data)
        for name, data in change("", None) or []:
            new.writestr(name, data)
    return target


def forged(tmp_path: Path) -> Path:
    """Every record and the index re-signed with a fresh key, its public key put in."""
    forger = Signer.generate()
    with zipfile.ZipFile(LEGACY) as z:
        members = {n: z.read(n) for n in z.namelist()}
    for name in members:
        if name.startswith("records/"):
            members[name] = json.dumps(forger.sign(json.loads(members[name]))).encode()
    members["public_key.pem"] = public_pem(forger.public)
    index = json.loads(members["index.json"])
    for item in index["files"]:
        item["size"], item["sha256"] = len(members[item["path"]]), hashlib.sha256(members[item["path"]]).hexdigest()
    members["index.json"] = json.dumps(forger.sign({**index, "key": forger.fingerprint})).encode()

    def change(name: str, data: bytes | None):
        return members.get(name) if name else None

    return rewrite(LEGACY, tmp_path / "forged.zip", change)


def test_an_old_package_verifies_only_against_its_anchor(capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "verify", str(LEGACY), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 0 and "VERIFIED" in out
    key = tmp_path / "key.pem"
    with zipfile.ZipFile(LEGACY) as z:
        key.write_bytes(z.read("public_key.pem"))
    code, out, _ = run(capsys, "verify", str(LEGACY), "--key", str(key))
    assert code == 0 and "VERIFIED" in out
    code, out, _ = run(capsys, "verify", str(LEGACY))  # no anchor: consistent, signer unknown
    assert code == 3 and "SIGNER UNKNOWN" in out and "VERIFIED" not in out


def test_a_package_re_signed_with_another_key_never_verifies(capsys, tmp_path) -> None:
    package = forged(tmp_path)
    code, out, _ = run(capsys, "verify", str(package))
    assert code == 3 and "VERIFIED" not in out
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "not a key you trust" in out
    for short in (LEGACY_FINGERPRINT[:5], "", LEGACY_FINGERPRINT[:31]):
        code, out, err = run(capsys, "verify", str(package), "--fingerprint", short)
        assert code == 1 and "VERIFIED" not in out and "32 to 64 hex digits" in err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["index.json", "records/x.json"])
def test_junk_json_is_a_finding_not_a_crash(capsys, tmp_path, name) -> None:
    def change(member: str, data: bytes | None):
        if not member:
            return [] if name == "index.json" else [(name, b"[]")]
        return b"[]" if member == name else data

    package = rewrite(LEGACY, tmp_path / "junk.zip", change)
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and name in out


def add_member(tmp_path: Path, name: str, data: bytes, **attrs) -> Path:
    """The legacy package with one more member (a tampered copy first when `name` exists)."""
    target = tmp_path / "attacked.zip"
    flags = attrs.pop("patch_flags", 0)
    with zipfile.ZipFile(LEGACY) as old, zipfile.ZipFile(target, "w") as new, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = zipfile.ZipInfo(name)
        for key, value in attrs.items():
            setattr(info, key, value)
        new.writestr(info, data)
        for item in old.infolist():
            new.writestr(item, old.read(item.filename))
    if flags:  # zipfile will not write an encryption flag: set it in both headers of the first member
        data = bytearray(target.read_bytes())
        data[6] |= flags
        central = data.index(b"PK\x01\x02")
        data[central + 8] |= flags
        target.write_bytes(bytes(data))
    return target


FOOTAGE = "footage/nvr1/4593408/20261128T140000Z_20261128T150000Z.mp4"


@pytest.mark.parametrize(
    ("name", "attrs", "finding"),
    [
        (FOOTAGE, {}, "duplicate name"),
        ("../evil.txt", {}, "unsafe name"),
        ("/etc/evil", {}, "unsafe name"),
        ("records/link", {"create_system": 3, "external_attr": 0o120777 << 16}, "not a regular file"),
        ("records/secret.json", {"patch_flags": 0x1}, "encrypted"),
    ],
)
def test_a_malformed_package_is_refused_by_name(capsys, tmp_path, name, attrs, finding) -> None:
    package = add_member(tmp_path, name, b"tampered", **attrs)
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and finding in out, out


def test_a_zip_glued_in_front_is_refused(capsys, tmp_path) -> None:
    glued = tmp_path / "glued.zip"
    front = add_member(tmp_path, "x", b"tampered").read_bytes()
    glued.write_bytes(front + LEGACY.read_bytes())
    code, out, _ = run(capsys, "verify", str(glued), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "before the first entry" in out, out


def test_a_zip_bomb_in_records_is_refused_without_inflating_it(capsys, tmp_path) -> None:
    """300 MB of zeros deflated to ~300 KB, declared honestly: refused by its size, unread."""
    import zlib

    block = bytes(1 << 20)
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = squeeze.compress(block) + squeeze.flush(zlib.Z_FULL_FLUSH)
    repeat = squeeze.compress(block) + squeeze.flush(zlib.Z_FULL_FLUSH)  # the same bytes each time
    stream = first + repeat * 299 + squeeze.flush()
    crc = 0
    for _ in range(300):
        crc = zlib.crc32(block, crc)
    package = add_member(tmp_path, "records/bomb.json", b"{}")
    data = package.read_bytes()
    # Replace the first member's body ("{}" stored) with the deflated stream, sizes and CRC patched.
    name_len, extra_len = struct.unpack("<HH", data[26:30])
    body_at = 30 + name_len + extra_len
    local = bytearray(data[:body_at])
    struct.pack_into("<H", local, 8, 8)  # deflated
    struct.pack_into("<III", local, 14, crc, len(stream), 300 << 20)  # crc, sizes
    rest = data[body_at + 2 :]
    central = rest.index(b"PK\x01\x02")
    entry = bytearray(rest[central:])
    struct.pack_into("<H", entry, 10, 8)
    struct.pack_into("<III", entry, 16, crc, len(stream), 300 << 20)
    shift = len(stream) - 2
    # every later local header moved by `shift`: fix the central offsets and the EOCD's
    out = bytearray(entry)
    at = 0
    while out[at : at + 4] == b"PK\x01\x02":
        offset = struct.unpack_from("<I", out, at + 42)[0]
        if offset:
            struct.pack_into("<I", out, at + 42, offset + shift)
        n, e, c = struct.unpack_from("<HHH", out, at + 28)
        at += 46 + n + e + c
    eocd = out.index(b"PK\x05\x06")
    struct.pack_into("<I", out, eocd + 16, struct.unpack_from("<I", out, eocd + 16)[0] + shift)
    package.write_bytes(bytes(local) + stream + rest[:central] + bytes(out))
    code, out_text, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "records/bomb.json" in out_text and "more than a record may be" in out_text, out_text


def test_an_unknown_method_and_a_bad_crc_are_findings(capsys, tmp_path) -> None:
    package = add_member(tmp_path, "records/odd.json", b"{}")
    data = bytearray(package.read_bytes())
    struct.pack_into("<H", data, 8, 99)  # the first member's method, local header and central directory
    struct.pack_into("<H", data, data.index(b"PK\x01\x02") + 10, 99)
    package.write_bytes(bytes(data))
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "unknown compression method 99" in out, out

    flipped = bytearray(LEGACY.read_bytes())
    flipped[2000] ^= 1  # inside the stored footage: its CRC no longer holds
    package.write_bytes(bytes(flipped))
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "CRC" in out, out


def hide(package: Path, name: str) -> None:
    """Drop `name`'s central-directory record (its bytes stay where they are): a member that
    directory readers never see and a streaming reader extracts."""
    data = package.read_bytes()
    eocd = data.rindex(b"PK\x05\x06")
    count, _, offset = struct.unpack_from("<HII", data, eocd + 10)
    kept, at = [], offset
    while data[at : at + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack_from("<HHH", data, at + 28)
        if data[at + 46 : at + 46 + n].decode() != name:
            kept.append(data[at : at + 46 + n + e + c])
        at += 46 + n + e + c
    directory = b"".join(kept)
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHI", tail, 8, count - 1, count - 1, len(directory))
    package.write_bytes(data[:offset] + directory + bytes(tail))


@pytest.mark.parametrize("where", ["between entries", "after the last entry"])
def test_a_member_hidden_from_the_directory_is_refused(capsys, tmp_path, where) -> None:
    package = tmp_path / "hidden.zip"
    hidden = "footage/nvr1/4593408/hidden.mp4"
    with zipfile.ZipFile(LEGACY) as old, zipfile.ZipFile(package, "w") as new:
        items = old.infolist()
        at = 1 if where == "between entries" else len(items)
        for index, item in enumerate([*items, None]):
            if index == at:
                new.writestr(hidden, b"the footage a streaming reader extracts")
            if item is not None:
                new.writestr(item, old.read(item.filename))
    hide(package, hidden)
    with zipfile.ZipFile(package) as z:
        assert hidden not in z.namelist()  # a directory reader sees the genuine package only
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "a hidden member?" in out, out


@pytest.mark.parametrize(("field", "finding"), [("name", "its local header names"), ("crc", "CRC or sizes differ")])
def test_a_local_header_that_disagrees_with_the_directory_is_refused(capsys, tmp_path, field, finding) -> None:
    data = bytearray(LEGACY.read_bytes())
    with zipfile.ZipFile(LEGACY) as z:
        at = z.getinfo(FOOTAGE).header_offset
    if field == "name":  # same length, so the layout is otherwise intact
        data[at + 30 + len(FOOTAGE) - 1] = ord("5")
    else:
        struct.pack_into("<I", data, at + 14, struct.unpack_from("<I", data, at + 14)[0] ^ 1)  # its CRC
    package = tmp_path / "disagrees.zip"
    package.write_bytes(bytes(data))
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and finding in out, out


def patched_method(package: Path, name: str, crc: int, size: int) -> None:
    """Mark the stored member `name` as deflated, with the CRC and inflated size given (its
    bytes, and so every offset, stay as they are): both headers say the same."""
    data = bytearray(package.read_bytes())
    with zipfile.ZipFile(package) as z:
        at, central = z.getinfo(name).header_offset, z.start_dir
    struct.pack_into("<H", data, at + 8, 8)
    struct.pack_into("<I", data, at + 14, crc)
    struct.pack_into("<I", data, at + 22, size)
    while data[central + 46 : central + 46 + len(name)] != name.encode():  # its central-directory entry
        n, e, c = struct.unpack_from("<HHH", data, central + 28)
        central += 46 + n + e + c
    struct.pack_into("<H", data, central + 10, 8)
    struct.pack_into("<I", data, central + 16, crc)
    struct.pack_into("<I", data, central + 24, size)
    package.write_bytes(bytes(data))


def test_a_member_hidden_after_a_deflate_stream_is_refused(capsys, tmp_path) -> None:
    """The custody text deflated, a forged footage member after the end of its stream but
    inside its compressed size: a directory reader inflates the genuine text (the index's
    hash holds), a streaming reader (`jar x <`) goes on to extract the forgery."""
    import zlib

    with zipfile.ZipFile(LEGACY) as z:
        custody = z.read("CHAIN_OF_CUSTODY.txt")
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = squeeze.compress(custody) + squeeze.flush()
    hidden = tmp_path / "hidden-member.zip"
    with zipfile.ZipFile(hidden, "w") as z:
        z.writestr(FOOTAGE, b"forged footage")
    raw = stream + hidden.read_bytes()

    package = rewrite(LEGACY, tmp_path / "deflated.zip", lambda n, d: raw if n == "CHAIN_OF_CUSTODY.txt" else d)
    patched_method(package, "CHAIN_OF_CUSTODY.txt", zlib.crc32(custody), len(custody))
    with zipfile.ZipFile(package) as z:
        assert z.read("CHAIN_OF_CUSTODY.txt") == custody  # a directory reader sees the genuine text
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "bytes after its deflate stream" in out, out

    honest = rewrite(LEGACY, tmp_path / "honest.zip", lambda n, d: stream if n == "CHAIN_OF_CUSTODY.txt" else d)
    patched_method(honest, "CHAIN_OF_CUSTODY.txt", zlib.crc32(custody), len(custody))
    code, out, _ = run(capsys, "verify", str(honest), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 0 and "VERIFIED" in out, out  # a deflated member that ends where it says is fine


class Unseekable:
    """A write-only stream that cannot seek or tell: zipfile writes sizes after the data."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def test_sizes_after_the_data_are_refused(capsys, tmp_path) -> None:
    out_stream = Unseekable()
    with zipfile.ZipFile(LEGACY) as old, zipfile.ZipFile(out_stream, "w") as new:  # type: ignore[arg-type]
        for item in old.infolist():
            new.writestr(item.filename, old.read(item.filename))
    package = tmp_path / "streamed.zip"
    package.write_bytes(bytes(out_stream.data))
    with zipfile.ZipFile(package) as z:
        assert all(i.flag_bits & 0x08 for i in z.infolist())
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "a data descriptor" in out, out


def test_bytes_after_the_end_and_a_comment_are_refused(capsys, tmp_path) -> None:
    trailing = tmp_path / "trailing.zip"
    trailing.write_bytes(LEGACY.read_bytes() + b"PK\x03\x04 a second story")
    code, out, _ = run(capsys, "verify", str(trailing), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "bytes after the end of the zip" in out, out

    commented = rewrite(LEGACY, tmp_path / "commented.zip", lambda n, d: d)
    with zipfile.ZipFile(commented, "a") as z:
        z.comment = b"a note only some readers show"
    code, out, _ = run(capsys, "verify", str(commented), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "a zip comment of 29 bytes" in out, out

    # A whole zip in the comment: readers that take the last end record read it instead.
    with zipfile.ZipFile(commented, "a") as z:
        z.comment = add_member(tmp_path, "x", b"another zip").read_bytes()[:60000]
    code, out, _ = run(capsys, "verify", str(commented), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "before the first entry" in out, out


def test_a_public_key_of_an_unknown_algorithm_is_a_finding(capsys, tmp_path) -> None:
    import base64

    # SubjectPublicKeyInfo with the algorithm 1.2.3.4, which no library knows
    der = bytes.fromhex("300c" + "3005" + "06032a0304" + "0303000102")
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der) + b"\n-----END PUBLIC KEY-----\n"
    package = rewrite(LEGACY, tmp_path / "odd-key.zip", lambda n, d: pem if n == "public_key.pem" else d)
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "not a PEM public key" in out, out
    key = tmp_path / "odd.pem"
    key.write_bytes(pem)
    code, out, err = run(capsys, "verify", str(LEGACY), "--key", str(key))
    assert code != 0 and "VERIFIED" not in out and "not a PEM public key" in err, err
    assert len(err.strip().splitlines()) == 1


def test_a_key_given_twice_in_the_index_is_refused(capsys, tmp_path) -> None:
    def change(name: str, data: bytes | None):
        if name != "index.json":
            return data
        assert data is not None and data.startswith(b"{")
        return b'{"case": {"name": "another case"}, ' + data[1:]  # first-wins readers see another case

    package = rewrite(LEGACY, tmp_path / "twice.zip", change)
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "given twice" in out, out


def resigned(tmp_path: Path, extra: dict[str, bytes], edit) -> tuple[Path, Path]:
    """The legacy package with `extra` members, listed in an index passed through `edit`
    and signed by a key of our own (whose public key file is returned): what the signer
    itself could put in a package, so the signature alone cannot catch it."""
    signer = Signer.generate()
    with zipfile.ZipFile(LEGACY) as z:
        members = {n: z.read(n) for n in z.namelist()}
    for name in members:
        if name.startswith("records/"):
            members[name] = json.dumps(signer.sign(json.loads(members[name]))).encode()
    members.update(extra, **{"public_key.pem": public_pem(signer.public)})
    index = json.loads(members["index.json"])
    index["files"] = [
        {"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in members.items()
        if n != "index.json"
    ]
    members["index.json"] = json.dumps(signer.sign(edit({**index, "key": signer.fingerprint}))).encode()
    package = tmp_path / "resigned.zip"
    with zipfile.ZipFile(package, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    key = tmp_path / "signer.pem"
    key.write_bytes(public_pem(signer.public))
    return package, key


def test_the_resigned_control_verifies(capsys, tmp_path) -> None:
    package, key = resigned(tmp_path, {}, lambda index: index)
    code, out, _ = run(capsys, "verify", str(package), "--key", str(key))
    assert code == 0 and "VERIFIED" in out, out


def test_footage_no_footage_item_vouches_for_is_refused(capsys, tmp_path) -> None:
    package, key = resigned(tmp_path, {"footage/nvr1/4593408/unvouched.mp4": b"footage"}, lambda index: index)
    code, out, _ = run(capsys, "verify", str(package), "--key", str(key))
    assert code == 1 and "FAILED" in out and "unvouched.mp4: footage that no footage item" in out, out


def test_a_path_listed_twice_is_refused(capsys, tmp_path) -> None:
    def twice(index: dict) -> dict:
        first = next(f for f in index["files"] if f["path"] == FOOTAGE)
        return {**index, "files": [{**first, "sha256": "0" * 64}, *index["files"]]}

    package, key = resigned(tmp_path, {}, twice)
    code, out, _ = run(capsys, "verify", str(package), "--key", str(key))
    assert code == 1 and "FAILED" in out and f"{FOOTAGE}: listed 2 times in the index" in out, out


def _raw(tmp_path: Path, data: bytes) -> Path:
    package = tmp_path / "raw.zip"
    package.write_bytes(data)
    return package


def _custody(entries: list[zipkit.Entry]) -> zipkit.Entry:
    return next(e for e in entries if e.name == b"CHAIN_OF_CUSTODY.txt")


def test_the_raw_writer_control_verifies(capsys, tmp_path) -> None:
    """The attacks below start from this: the genuine members, written by tests/zipkit.py."""
    package = _raw(tmp_path, zipkit.build(zipkit.entries_of(LEGACY)))
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 0 and "VERIFIED" in out, out


def swap_names(where: str):
    """`unzip` names the footage after the custody text and the other way round."""

    def attack(entries: list[zipkit.Entry]) -> None:
        footage = next(e for e in entries if e.name == FOOTAGE.encode())
        custody = _custody(entries)
        for entry, shown in ((footage, custody.name), (custody, footage.name)):
            field = zipkit.unicode_path(entry.name, shown)
            if where in ("central", "both"):
                entry.central_extra = field
            if where in ("local", "both"):
                entry.local_extra = field

    return attack


def set_on_custody(**fields):
    def attack(entries: list[zipkit.Entry]) -> None:
        for name, value in fields.items():
            setattr(_custody(entries), name, value)

    return attack


def stored_slack(entries: list[zipkit.Entry]) -> None:
    """The custody text stored with slack after its bytes: a directory reader reads its size,
    a streaming reader (`jar x <`) reads the slack as the next entry: forged footage."""
    custody = _custody(entries)
    forged = zipkit.Entry(FOOTAGE.encode(), b"FORGED FOOTAGE: not what the manifest vouches for\n")
    custody.body = custody.data + forged.local() + forged.body


@pytest.mark.parametrize(
    ("attack", "finding"),
    [
        (swap_names("central"), "its directory entry's extra field 0x7075"),
        (swap_names("both"), "its local header's extra field 0x7075"),
        (swap_names("local"), "its local header's extra field 0x7075"),
        (set_on_custody(local_flags=0x08), "its local header's method or flags differ"),
        (set_on_custody(name=b"CHAIN_OF_CUSTODY.txt\0/../../../tmp/evil"), "unsafe name"),
        (set_on_custody(comment=b"PK\x03\x04 anything at all " * 100), "an entry comment of 2100 bytes"),
        (set_on_custody(central_extra=struct.pack("<HHI", 0x6C78, 4, 0o120777 << 16)), "extra field 0x6c78"),
        (set_on_custody(local_extra=struct.pack("<HH", 0x0001, 40)), "local header's extra field 0x0001 runs past"),
        (stored_slack, "stored, yet"),
        (set_on_custody(system=16, mode=0o120777), "made on host system 16"),
        (set_on_custody(system=16, mode=0o120777), "not a regular file (a link or device, mode 120000)"),
    ],
    ids=["unicode-path", "unicode-path-both", "unicode-path-local", "local-flags", "nul", "comment", "mode-extra",
         "overlong-extra", "stored-slack", "beos-host", "beos-link"],
)  # fmt: skip
def test_a_member_another_reader_reads_otherwise_is_refused(capsys, tmp_path, attack, finding) -> None:
    entries = zipkit.entries_of(LEGACY)
    attack(entries)
    package = _raw(tmp_path, zipkit.build(entries))
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and finding in out, out


@pytest.mark.parametrize(
    ("options", "finding"),
    [({"count": 5}, "the end record counts 5 entries; the directory holds 6"), ({"disk": 1}, "another disk")],
)
def test_an_end_record_that_lies_is_refused(capsys, tmp_path, options, finding) -> None:
    package = _raw(tmp_path, zipkit.build(zipkit.entries_of(LEGACY), **options))
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and finding in out, out


def test_two_end_records_naming_two_directories_are_refused(capsys, tmp_path) -> None:
    """Python reads the genuine directory (through the ZIP64 end record), `unzip` the one
    the classic end record names, whose footage entry points at a forgery."""
    entries = zipkit.entries_of(LEGACY)
    forged = zipkit.Entry(FOOTAGE.encode(), b"FORGED FOOTAGE: not what the manifest vouches for\n")
    package = _raw(tmp_path, zipkit.two_directories(entries, forged))
    with zipfile.ZipFile(package) as z:
        assert z.read(FOOTAGE) != forged.data  # what Python (and so verify) would have hashed
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out and "(two directories?)" in out, out


def test_a_json_bomb_is_not_parsed(capsys, tmp_path) -> None:
    """Each JSON value costs Python ~60 bytes: 64 MB of `[[],[],...` would take 1.8 GB. A
    record the index does not list is never parsed; one it lists is bounded by its count
    of values before it is parsed."""
    bomb = b"[" + b"[]," * 2_000_001 + b"[]]"
    entries = [*zipkit.entries_of(LEGACY), zipkit.Entry(b"records/junk.json", bomb, method=8)]
    package = _raw(tmp_path, zipkit.build(entries))
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "records/junk.json: not in the signed index" in out, out
    assert "JSON" not in out  # refused by name, unread

    package, key = resigned(tmp_path, {"records/manifests/bomb.json": bomb}, lambda index: index)
    code, out, _ = run(capsys, "verify", str(package), "--key", str(key))
    assert code == 1 and "records/manifests/bomb.json: not JSON a record may be: 4000004 JSON values" in out, out


@pytest.mark.parametrize("shape", ["values", "envelope"])
def test_an_index_that_would_take_gigabytes_to_parse_is_refused_unparsed(capsys, tmp_path, shape) -> None:
    """index.json is read before its signature can be checked: 4 million values (about
    0.25 GB once parsed), plain or base64 inside an envelope's payload; larger ones are
    refused by size (16 MB) before they are read."""
    import base64

    values = b"[" + b"[]," * 2_000_001 + b"[]]"  # 6 MB: under the index's 16 MB cap
    index = (
        values
        if shape == "values"
        else json.dumps(
            {"payloadType": PACKAGE_INDEX, "payload": base64.b64encode(values).decode(), "signatures": []}
        ).encode()
    )
    package = rewrite(LEGACY, tmp_path / "heavy.zip", lambda n, d: index if n == "index.json" else d)
    code, out, _ = run(capsys, "verify", str(package), "--fingerprint", LEGACY_FINGERPRINT)
    assert code == 1 and "FAILED" in out, out
    said = "4000004 JSON values or more" if shape == "values" else "index.json: not a JSON object"
    assert said in out, out
