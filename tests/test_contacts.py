"""The contacts reader: checked before streaming, one Contact or InvalidRow per row."""

from __future__ import annotations

from pathlib import Path

import pytest

from callagent.contacts import Contact, ContactsReader, InvalidRow, read_contacts
from callagent.errors import InputError


def write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def read(path: Path, region: str = "US") -> list[Contact | InvalidRow]:
    return list(read_contacts(path, default_region=region))


def contacts(items: list[Contact | InvalidRow]) -> list[Contact]:
    return [item for item in items if isinstance(item, Contact)]


def invalid(items: list[Contact | InvalidRow]) -> list[InvalidRow]:
    return [item for item in items if isinstance(item, InvalidRow)]


def input_error(path: Path, region: str = "US") -> str:
    """The message of the InputError raised while checking and reading ``path``."""
    with pytest.raises(InputError) as caught:
        read(path, region)
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    return message


class TestHeader:
    @pytest.mark.parametrize(
        "column",
        ["phone", "PHONE", " Phone ", "phone_number", "Phone_Number", "phone number"],
    )
    def test_phone_column_aliases(self, tmp_path: Path, column: str) -> None:
        """Every accepted spelling of the phone column is found, in any case."""
        path = write(tmp_path / "c.csv", f"{column},name\n+14155550123,Ann\n")
        [contact] = contacts(read(path))
        assert contact.phone == "+14155550123"

    def test_bom_is_ignored(self, tmp_path: Path) -> None:
        """A UTF-8 byte order mark before the header does not hide the phone column."""
        path = write(tmp_path / "c.csv", "phone,name\n+14155550123,Zoë\n", bom=True)
        [contact] = contacts(read(path))
        assert contact.name == "Zoë"

    def test_known_and_extra_columns(self, tmp_path: Path) -> None:
        """contact_id, name and timezone are fields; other columns are variables."""
        path = write(
            tmp_path / "c.csv",
            "Contact_ID,Name,Timezone,Phone,Company,Plan\n"
            "c-7, Ann ,Europe/London,+14155550123,Acme,gold\n",
        )
        [contact] = contacts(read(path))
        assert contact == Contact(
            row=2,
            phone="+14155550123",
            contact_id="c-7",
            name="Ann",
            timezone="Europe/London",
            variables={"Company": "Acme", "Plan": "gold"},
        )

    def test_default_contact_id_comes_from_the_row(self, tmp_path: Path) -> None:
        """Without a contact_id the row gives one, the same on every read."""
        path = write(tmp_path / "c.csv", "phone,contact_id\n+14155550123,\n")
        first = contacts(read(path))
        assert [c.contact_id for c in first] == ["row-2"]
        assert first == contacts(read(path))


class TestNumbers:
    @pytest.mark.parametrize(
        ("raw", "region", "e164"),
        [
            ("(415) 555-0123", "US", "+14155550123"),
            ("415.555.0123", "us", "+14155550123"),
            ("020 7946 0958", "GB", "+442079460958"),
            ("+44 20 7946 0958", "US", "+442079460958"),
        ],
    )
    def test_normalised_to_e164(
        self, tmp_path: Path, raw: str, region: str, e164: str
    ) -> None:
        """National numbers use the default region; international ones keep theirs."""
        path = write(tmp_path / "c.csv", f'phone\n"{raw}"\n')
        [contact] = contacts(read(path, region))
        assert contact.phone == e164

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("", "missing phone number"),
            ("call me", "not a phone number"),
            ("12", "not a valid phone number for region US"),
            ("+999 1234 5678", "unknown or missing country code"),
            ("+1 555 0123", "not a valid phone number"),
            ("020 7946 0958", "not a valid phone number for region US"),
        ],
    )
    def test_invalid_numbers_have_a_reason(
        self, tmp_path: Path, raw: str, reason: str
    ) -> None:
        """A missing, unparsable or impossible number is an InvalidRow saying why."""
        path = write(tmp_path / "c.csv", f"phone,name\n+14155550123,ok\n{raw},bad\n")
        [row] = invalid(read(path))
        assert row == InvalidRow(3, reason, raw)

    def test_duplicates_found_after_normalisation(self, tmp_path: Path) -> None:
        """The same number written two ways is a duplicate; the first one is kept."""
        path = write(
            tmp_path / "c.csv",
            "phone,name\n(415) 555-0123,first\n+1 415 555 0123,second\n",
        )
        items = read(path)
        assert [c.name for c in contacts(items)] == ["first"]
        assert invalid(items) == [
            InvalidRow(3, "duplicate of a number on an earlier row", "+1 415 555 0123")
        ]


class TestRowNumbers:
    def test_rows_are_file_lines_across_multiline_fields(self, tmp_path: Path) -> None:
        """A quoted field spanning lines shifts later rows to their real line."""
        path = write(
            tmp_path / "c.csv",
            'phone,note\n+14155550123,"two\nlines"\nnot-a-number,x\n+14155550124,y\n',
        )
        items = read(path)
        assert [item.row for item in items] == [2, 4, 5]
        assert contacts(items)[0].variables == {"note": "two\nlines"}

    def test_blank_lines_are_skipped_but_counted(self, tmp_path: Path) -> None:
        """Blank lines are no rows, yet rows after them keep their line numbers."""
        path = write(tmp_path / "c.csv", "\nphone\n\n+14155550123\n,\n+14155550124\n")
        assert [item.row for item in read(path)] == [4, 6]

    def test_crlf_line_endings(self, tmp_path: Path) -> None:
        """Windows line endings give the same rows and numbers."""
        path = write(tmp_path / "c.csv", "phone\r\n+14155550123\r\nx\r\n")
        assert [item.row for item in read(path)] == [2, 3]


class TestCounts:
    def test_counts_after_iteration(self, tmp_path: Path) -> None:
        """valid and invalid count what the iteration yielded."""
        path = write(
            tmp_path / "c.csv", "phone\n+14155550123\nx\n+14155550123\n+14155550124\n"
        )
        reader = ContactsReader(path, default_region="US")
        list(reader)
        assert (reader.valid, reader.invalid) == (2, 2)

    def test_rows_are_streamed(self, tmp_path: Path) -> None:
        """The first row is handed out before later rows are read."""
        lines = "".join(f"+1415555{i:04d}\n" for i in range(1000, 3000))
        path = write(tmp_path / "c.csv", "phone\n" + lines)
        reader = read_contacts(path, default_region="US")
        first = next(iter(reader))
        assert first.row == 2
        assert reader.valid == 1

    def test_digest_changes_with_content(self, tmp_path: Path) -> None:
        """The fingerprint is stable for a file and differs once it changes."""
        path = write(tmp_path / "c.csv", "phone\n+14155550123\n")
        before = read_contacts(path, default_region="US").digest
        assert read_contacts(path, default_region="US").digest == before
        write(path, "phone\n+14155550124\n")
        assert read_contacts(path, default_region="US").digest != before


class TestBadFiles:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that does not exist is an InputError naming it."""
        assert "not found" in input_error(tmp_path / "nope.csv")

    def test_directory(self, tmp_path: Path) -> None:
        """A directory is an InputError naming it."""
        assert "is a directory" in input_error(tmp_path)

    def test_binary_file(self, tmp_path: Path) -> None:
        """A file with NUL bytes is refused as binary."""
        path = tmp_path / "c.csv"
        path.write_bytes(b"phone\n+14155550123\n\x00\x01\x02")
        assert "binary" in input_error(path)

    def test_wrong_encoding_names_the_line(self, tmp_path: Path) -> None:
        """A non-UTF-8 byte is refused before any row, with its line number."""
        path = tmp_path / "c.csv"
        path.write_bytes(
            "phone,name\n+14155550123,Ann\n+14155550124,Zoë\n".encode("latin-1")
        )
        assert "not UTF-8 text (line 3)" in input_error(path)

    @pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"  \n\r\n"])
    def test_empty_file(self, tmp_path: Path, content: bytes) -> None:
        """An empty file, or one of only a BOM or whitespace, is refused as empty."""
        path = tmp_path / "c.csv"
        path.write_bytes(content)
        assert "empty" in input_error(path)

    def test_header_without_phone(self, tmp_path: Path) -> None:
        """A header with no phone column is refused, listing the accepted names."""
        path = write(tmp_path / "c.csv", "name,mobile\nAnn,+14155550123\n")
        assert "no phone column" in input_error(path)

    def test_two_phone_columns(self, tmp_path: Path) -> None:
        """Two phone columns are ambiguous and refused."""
        path = write(tmp_path / "c.csv", "phone,Phone Number\n+14155550123,x\n")
        assert "several phone columns" in input_error(path)

    def test_checks_run_before_streaming(self, tmp_path: Path) -> None:
        """A bad byte on the last line fails at construction, before any row."""
        path = tmp_path / "c.csv"
        path.write_bytes(b"phone\n+14155550123\n+14155550124\xff\n")
        with pytest.raises(InputError, match="line 3"):
            ContactsReader(path, default_region="US")

    def test_header_only(self, tmp_path: Path) -> None:
        """A header and no data rows is refused once the file is read."""
        path = write(tmp_path / "c.csv", "phone,name\n")
        assert "no data rows" in input_error(path)

    def test_no_valid_row(self, tmp_path: Path) -> None:
        """Only bad rows: all are yielded, then an InputError names the first."""
        path = write(tmp_path / "c.csv", "phone\nx\n\n+1 555\n")
        reader = read_contacts(path, default_region="US")
        seen: list[Contact | InvalidRow] = []
        with pytest.raises(InputError) as caught:
            seen.extend(reader)
        assert [item.row for item in seen] == [2, 4]
        assert str(caught.value) == (
            f"{path}: no valid contact in 2 rows "
            "(first problem: row 2: not a phone number)"
        )

    def test_oversized_field_names_the_line(self, tmp_path: Path) -> None:
        """A field over the csv module's size limit is an InputError with its line."""
        path = write(tmp_path / "c.csv", f"phone,note\n+14155550123,{'x' * 200_000}\n")
        assert "line 2: malformed CSV" in input_error(path)
