"""SemVer: parsing, printing and semver 2.0.0 precedence."""

from __future__ import annotations

import pytest

from framework.config import SemVer


def test_parse_full_version() -> None:
    v = SemVer.parse("1.2.3-rc.1+build.5")
    assert (v.major, v.minor, v.patch) == (1, 2, 3)
    assert v.prerelease == ("rc", "1")
    assert v.build == ("build", "5")
    assert str(v) == "1.2.3-rc.1+build.5"
    assert v.is_prerelease


@pytest.mark.parametrize("text", ["0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0+20130313"])
def test_round_trip(text: str) -> None:
    assert str(SemVer.parse(text)) == text


def test_error_message_for_two_part_version() -> None:
    with pytest.raises(ValueError) as info:
        SemVer.parse("1.2")
    assert str(info.value) == ("'1.2' is not a semantic version; use MAJOR.MINOR.PATCH, e.g. 1.2.0")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "v1.2.3",
        "01.2.3",
        "1.02.3",
        "1.2.3-",
        "1.2.3-01",
        "1.2.3+",
        "a.b.c",
        "1.2.3.4",
        " 1.2.3",
        "1.2.3-alpha..1",
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a semantic version; use MAJOR.MINOR.PATCH"):
        SemVer.parse(text)


def test_hint_suggests_close_version() -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 1\.2\.3$"):
        SemVer.parse("v1.2.3")


def test_precedence_follows_the_spec_example() -> None:
    # The example chain from semver.org, section 11.
    chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
        "10.0.0",
    ]
    versions = [SemVer.parse(t) for t in chain]
    for lower, higher in zip(versions, versions[1:], strict=False):
        assert lower < higher
        assert higher > lower
        assert lower <= higher and higher >= lower
    assert sorted(reversed(versions)) == versions


def test_numeric_identifiers_compare_numerically() -> None:
    assert SemVer.parse("1.0.0-2") < SemVer.parse("1.0.0-10")
    assert SemVer.parse("1.0.0-10") < SemVer.parse("1.0.0-a")  # numeric before alphanumeric
    assert SemVer.parse("1.9.0") < SemVer.parse("1.10.0")


def test_build_metadata_is_ignored_for_ordering() -> None:
    a, b = SemVer.parse("1.0.0+a"), SemVer.parse("1.0.0+b")
    assert a == b and not a < b and not b < a
    assert hash(a) == hash(b)
    assert SemVer.parse("1.0.0-rc.1+x") < SemVer.parse("1.0.0")


def test_frozen() -> None:
    v = SemVer.parse("1.0.0")
    with pytest.raises(AttributeError):
        v.major = 2  # type: ignore[misc]
