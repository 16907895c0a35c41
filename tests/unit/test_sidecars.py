"""Which file is whose XMP sidecar (mediad/walker.py), as scan and the docs say."""

from __future__ import annotations

from mediad.walker import is_sidecar, sidecar_names


def test_a_sidecar_is_name_ext_xmp_first_then_name_xmp() -> None:
    assert sidecar_names("IMG_0001.JPG") == (
        "IMG_0001.JPG.xmp",
        "IMG_0001.JPG.XMP",
        "IMG_0001.xmp",
        "IMG_0001.XMP",
    )
    assert sidecar_names("a.b.cr2")[::2] == ("a.b.cr2.xmp", "a.b.xmp")
    # Without an extension both spellings are the same name.
    assert sidecar_names("scan") == ("scan.xmp", "scan.XMP")
    assert sidecar_names(".hidden") == (".hidden.xmp", ".hidden.XMP")


def test_xmp_files_are_never_files_of_their_own() -> None:
    assert is_sidecar("a.jpg.xmp") and is_sidecar("a.XMP") and is_sidecar("orphan.xmp")
    assert not is_sidecar("a.jpg") and not is_sidecar("xmp") and not is_sidecar("a.xmpx")
