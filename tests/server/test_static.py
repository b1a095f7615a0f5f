"""krait/server/static.py without sockets: validators, conditional requests and ranges on files in a
temp folder (RFC 9110 sections 8.8, 13 and 14)."""

import email.utils
import os
import time

import pytest

from krait.server.static import FileChanged, StaticFiles, parse_range


@pytest.fixture
def files(tmp_path):
    small = tmp_path / "small.txt"
    small.write_bytes(b"0123456789")
    return StaticFiles(lambda rel: "max-age=1, must-revalidate", max_file_size=100), str(small)


def headers_of(reply):
    return dict(reply.headers)


def test_a_small_file_is_served_from_memory_with_validators(files):
    static, path = files
    reply = static.reply(path, "small.txt", "GET", {})
    h = headers_of(reply)
    assert (reply.status, reply.body, reply.file_range) == (200, b"0123456789", None)
    assert h["Content-Type"] == "text/plain; charset=utf-8" and h["Content-Length"] == "10"
    assert h["ETag"].startswith('"') and h["Last-Modified"].endswith("GMT")
    assert h["Accept-Ranges"] == "bytes" and h["Cache-Control"] == "max-age=1, must-revalidate"


def test_a_large_file_is_streamed(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 1000)
    reply = StaticFiles(lambda rel: "", max_file_size=100).reply(str(big), "big.bin", "GET", {})
    opened, offset, length = reply.file_range
    assert (reply.status, reply.body, opened.name, offset, length) == (200, b"", str(big), 0, 1000)
    big.unlink()  # the body comes from the file opened before the head was made
    assert opened.read() == b"x" * 1000
    opened.close()


def test_a_large_file_replaced_after_its_check_is_not_sent_under_the_old_head(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"A" * 1000)
    checked = os.stat(big)  # what routing saw
    (tmp_path / "new.bin").write_bytes(b"B" * 1000)
    os.replace(tmp_path / "new.bin", big)  # a deploy's rename, between the check and the answer
    with pytest.raises(FileChanged):
        StaticFiles(lambda rel: "", max_file_size=100).reply(str(big), "big.bin", "GET", {}, checked)


def test_last_modified_is_never_in_the_future(files):
    static, path = files
    ahead = time.time() + 3 * 365 * 86400  # a file unpacked from a machine whose clock ran ahead
    os.utime(path, (ahead, ahead))
    last_modified = headers_of(static.reply(path, "small.txt", "GET", {}))["Last-Modified"]
    assert email.utils.parsedate_to_datetime(last_modified).timestamp() <= time.time()
    time.sleep(1.1)
    with open(path, "ab") as f:  # edited now: a client revalidating by date must get it
        f.write(b"!")
    assert static.reply(path, "small.txt", "GET", {"if-modified-since": last_modified}).status == 200


def test_if_none_match_on_other_methods_is_412(files):
    static, path = files
    etag = headers_of(static.reply(path, "small.txt", "GET", {}))["ETag"]
    for inm in (etag, "*"):
        assert static.reply(path, "small.txt", "PUT", {"if-none-match": inm}).status == 412  # RFC 9110 13.1.2
    assert static.reply(path, "small.txt", "PUT", {"if-none-match": '"other"'}).status == 200


def test_a_list_of_dates_is_ignored(files):
    static, path = files
    dates = "Sat, 01 Jan 2000 00:00:00 GMT, Fri, 01 Jan 2100 00:00:00 GMT"  # RFC 9110 13.1.3: not a date
    assert static.reply(path, "small.txt", "GET", {"if-modified-since": dates}).status == 200
    assert static.reply(path, "small.txt", "GET", {"if-unmodified-since": dates}).status == 200


def test_an_edit_is_seen_at_once(files):
    static, path = files
    etag = headers_of(static.reply(path, "small.txt", "GET", {}))["ETag"]
    with open(path, "ab") as f:
        f.write(b"!")
    reply = static.reply(path, "small.txt", "GET", {})
    assert reply.body == b"0123456789!" and headers_of(reply)["ETag"] != etag


@pytest.mark.parametrize("make_inm", [
    lambda tag: tag, lambda tag: "W/" + tag, lambda tag: '"other", ' + tag, lambda tag: "*",
    lambda tag: tag[:-1] + '-gz"',  # the client holds the gzip representation
])
def test_if_none_match_gives_304(files, make_inm):
    static, path = files
    tag = headers_of(static.reply(path, "small.txt", "GET", {}))["ETag"]
    reply = static.reply(path, "small.txt", "GET", {"if-none-match": make_inm(tag)})
    assert (reply.status, reply.body) == (304, b"")
    assert headers_of(reply)["ETag"] == tag and headers_of(reply)["Content-Length"] == "10"


def test_if_none_match_wins_over_if_modified_since(files):
    static, path = files
    lm = headers_of(static.reply(path, "small.txt", "GET", {}))["Last-Modified"]
    assert static.reply(path, "small.txt", "GET", {"if-modified-since": lm}).status == 304
    assert static.reply(path, "small.txt", "HEAD", {"if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT"}).status == 200
    assert static.reply(path, "small.txt", "GET", {"if-none-match": '"x"', "if-modified-since": lm}).status == 200
    assert static.reply(path, "small.txt", "GET", {"if-modified-since": "garbage"}).status == 200


def test_if_match_and_if_unmodified_since_fail_with_412(files):
    # RFC 9110 sections 13.1.1, 13.1.4 and the order of 13.2.2: If-Match first, then If-Unmodified-Since.
    static, path = files
    h = headers_of(static.reply(path, "small.txt", "GET", {}))
    tag, lm = h["ETag"], h["Last-Modified"]
    for conditions, expected in [
        ({"if-match": '"other"'}, 412),
        ({"if-match": "W/" + tag}, 412),  # strong comparison: a weak tag never matches
        ({"if-match": '"other", ' + tag}, 200),
        ({"if-match": "*"}, 200),
        ({"if-match": '"other"', "range": "bytes=2-4"}, 412),
        ({"if-unmodified-since": "Sat, 01 Jan 2000 00:00:00 GMT"}, 412),
        ({"if-unmodified-since": lm}, 200),
        ({"if-unmodified-since": "garbage"}, 200),  # an invalid date is ignored
        ({"if-match": tag, "if-unmodified-since": "Sat, 01 Jan 2000 00:00:00 GMT"}, 200),  # If-Match wins
        ({"if-match": tag, "if-none-match": tag}, 304),
    ]:
        assert static.reply(path, "small.txt", "GET", conditions).status == expected, conditions


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_an_asctime_date_is_utc_whatever_the_servers_time_zone(files, monkeypatch, zone):
    # RFC 9110 section 5.6.7: the asctime form carries no zone and means UTC, as the other two do.
    static, path = files
    mtime = os.stat(path).st_mtime
    asctime = time.asctime(time.gmtime(int(mtime) - 3600))  # an hour older than the file, in UTC
    later = time.asctime(time.gmtime(int(mtime) + 3600))
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert static.reply(path, "small.txt", "GET", {"if-modified-since": asctime}).status == 200
        assert static.reply(path, "small.txt", "GET", {"if-modified-since": later}).status == 304
    finally:
        monkeypatch.undo()
        time.tzset()


def test_single_ranges(files):
    static, path = files
    reply = static.reply(path, "small.txt", "GET", {"range": "bytes=2-4"})
    assert (reply.status, reply.body, headers_of(reply)["Content-Range"]) == (206, b"234", "bytes 2-4/10")
    assert static.reply(path, "small.txt", "GET", {"range": "bytes=-3"}).body == b"789"
    unsatisfiable = static.reply(path, "small.txt", "GET", {"range": "bytes=50-"})
    assert unsatisfiable.status == 416 and headers_of(unsatisfiable)["Content-Range"] == "bytes */10"
    assert static.reply(path, "small.txt", "GET", {"range": "bytes=0-1,4-5"}).status == 200  # several: whole
    assert static.reply(path, "small.txt", "HEAD", {"range": "bytes=2-4"}).status == 200  # ranges are for GET


def test_if_range_must_match_strongly(files):
    static, path = files
    tag = headers_of(static.reply(path, "small.txt", "GET", {}))["ETag"]
    assert static.reply(path, "small.txt", "GET", {"range": "bytes=0-0", "if-range": tag}).status == 206
    assert static.reply(path, "small.txt", "GET", {"range": "bytes=0-0", "if-range": "W/" + tag}).status == 200
    assert static.reply(path, "small.txt", "GET", {"range": "bytes=0-0", "if-range": '"old"'}).status == 200


def test_a_range_of_a_streamed_file_is_a_file_range(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1000))
    reply = StaticFiles(lambda rel: "", max_file_size=100).reply(str(big), "big.bin", "GET", {"range": "bytes=100-"})
    assert reply.status == 206 and reply.file_range[0].name == str(big) and reply.file_range[1:] == (100, 900)
    reply.file_range[0].close()


@pytest.mark.parametrize("value, expected", [
    ("bytes=0-0", (0, 0)), ("bytes=5-", (5, 9)), ("bytes=-20", (0, 9)), ("bytes=3-100", (3, 9)),
    ("bytes=10-", "unsatisfiable"), ("bytes=-0", "unsatisfiable"), ("bytes=4-2", None), ("items=0-1", None),
    ("bytes=a-b", None), ("bytes=-", None), ("bytes=1", None), ("bytes=1-2,3-4", None),
    ("bytes=\u00b2-", None), ("bytes=-\u0663", None),  # digits, but not ASCII ones: no ValueError
])
def test_parse_range(value, expected):
    assert parse_range(value, 10) == expected
