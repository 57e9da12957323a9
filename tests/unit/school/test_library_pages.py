# ruff: noqa: E501, W291
"""Parsers of the library catalogues' pages, query and ISBN normal forms, record-URL checks.

The sample pages follow the evidence (docs/library-protocol.md): the WebPAC row is
built around the 2013 client's own saved brief citation; the ILAS pages are GBK.
"""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from school.errors import QueryRejected, SchoolPageError, SchoolServerError
from systems.library.config import MainCatalogueConfig, ZhuhaiCatalogueConfig
from systems.library.covers import image_type, normalise_isbn
from systems.library.holdings import due_date, holding, on_shelf
from systems.library.ilas import IlasClient
from systems.library.ilas_pages import parse_detail, parse_results
from systems.library.innopac import InnopacClient
from systems.library.innopac_pages import parse_record, parse_search
from systems.library.isbn import find_isbn, isbn13
from systems.library.models import normalise_query

BASE = "http://202.116.13.244"
UTF8 = "text/html; charset=UTF-8"

INNOPAC_RESULTS = """\
<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html lang="zh">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<title>暨南大学图书馆 书目检索 /关键词 df</title>
</head>
<body>
<table class="browseScreen" width="100%">
<tr><td class="browseHeader"><table width="100%"><tr>
<td class="browseHeaderData">关键词 (13-14 共 14)</td>
</tr></table></td></tr>
<tr><td><table width="100%" class="browseList">
<tr><td class="briefCitRow" colspan="3">
<table width="100%" border="0" cellspacing="0" cellpadding="0"><tr>
<td align="center" class="briefcitEntryNum"><input type="checkbox" name="save" value="b1234567" id="b1234567"><br />13</td>
<td align="left" class="briefcitDetail">
<!--{nohitmsg}-->
<span class="briefcitTitle">
<a href="/search~S1*chx?/X(df)&SORT=D/X(df)&SORT=D&SUBKEY=(df)/1%2C11%2C11%2CB/frameset&FF=X(df)&SORT=D&11%2C11%2C">狼のブルース</a>
</span>
<br />
 / 五木寛之著&nbsp; &nbsp;
東京 : 講談社, 1970.4&nbsp; &nbsp;
268p ; 19cm<!--
<div>
1970</div>
-->
<br />
<span class="briefcitStatus">可借</span>
<div class="briefcitItems">
<table width="100%" border="0" cellspacing="1" cellpadding="2" class="bibItems">
<tr class="bibItemsHeader"><th class="bibItemsHeader">馆藏地</th><th class="bibItemsHeader">索书号</th><th class="bibItemsHeader">状态</th></tr>
<tr  class="bibItemsEntry">
<td width="38%" ><!-- field 1 -->&nbsp;<a href="/screens/loc.html">外文图书借阅区</a> 
</td>
<td width="38%" ><!-- field C -->&nbsp;<a href="/search~S1*chx?/cI313.45/1/ci313.45/1/-3,-1,,B/browse">I313.45/1</a> <!-- field v --><!-- field # --></td>
<td width="24%" ><!-- field % -->&nbsp;在架上 </td></tr>
<tr  class="bibItemsEntry">
<td width="38%" ><!-- field 1 -->&nbsp;<a href="/screens/loc.html">外文图书借阅区</a> 
</td>
<td width="38%" ><!-- field C -->&nbsp;<a href="/search~S1*chx?/cI313.45/1/ci313.45/1/-3,-1,,B/browse">I313.45/1</a> <!-- field v -->c.2<!-- field # --></td>
<td width="24%" ><!-- field % -->&nbsp;到期 2013-05-01 </td></tr>
</table>
</div>
<div class="briefcitItems">日本小说</div>
</td>
<td align="center" class="briefcitExtras"><img src="/bookjacket?isbn=4-06-123456-X&amp;size=0" alt="封面"></td>
</tr></table>
</td></tr>
<tr><td class="briefCitRow" colspan="3">
<table width="100%" border="0" cellspacing="0" cellpadding="0"><tr>
<td align="center">14</td>
<td align="left" class="briefcitDetail">
<span class="briefcitTitle">
<a href="/search~S1*chx?/X(df)&SORT=D/X(df)&SORT=D&SUBKEY=(df)/14%2C14%2C14%2CB/frameset&FF=X(df)&SORT=D&14%2C14%2C">Data flow analysis</a>
</span>
<br />
New York : Springer, 2009.&nbsp; &nbsp;
xii, 350 p. : ill. ; 24 cm
<br />
<span class="briefcitStatus"></span>
<div class="briefcitItems">
<table class="bibItems">
<tr  class="bibItemsEntry">
<td><!-- field 1 -->&nbsp;<a href="/x">Main stacks</a></td>
<td><!-- field C -->&nbsp;<a href="/y">QA76.9 .D35</a></td>
<td><!-- field % -->&nbsp;DUE 05-01-13 </td></tr>
</table>
</div>
</td>
<td align="center"></td>
</tr></table>
</td></tr>
</table></td></tr>
</table>
</body>
</html>
"""

INNOPAC_RECORD = """\
<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<title>暨南大学图书馆 /Python</title>
</head>
<body>
<div class="pageContentColumn">
<table width="100%" class="bibDetail"><tr><td>
<table width="100%" border="0" cellspacing="0" cellpadding="0">
<tr><td valign="top" width="20%" class="bibInfoLabel">题名</td><td class="bibInfoData"><strong>Python编程入门 / 张伟著</strong></td></tr>
<tr><td valign="top" width="20%" class="bibInfoLabel">出版资料</td><td class="bibInfoData">北京 : 机械工业出版社, 2012.01</td></tr>
<tr><td valign="top" width="20%" class="bibInfoLabel">载体形态</td><td class="bibInfoData">197页 : 图 ; 21cm</td></tr>
<tr><td valign="top" width="20%" class="bibInfoLabel">标准号</td><td class="bibInfoData">ISBN 978-7-111-36789-5 : CNY45.00</td></tr>
<tr><td valign="top" width="20%" class="bibInfoLabel">附注</td><td class="bibInfoData">第一行</td></tr>
<tr><td valign="top" width="20%" class="bibInfoLabel"></td><td class="bibInfoData">第二行</td></tr>
</table>
</td></tr></table>
<table class="bibItems">
<tr  class="bibItemsEntry">
<td width="38%" ><!-- field 1 -->&nbsp;<a href="/l">中文图书借阅区(三楼)</a></td>
<td width="38%" ><!-- field C -->&nbsp;<a href="/c">TP311.56/12</a> <!-- field v --><!-- field # --></td>
<td width="24%" ><!-- field % -->&nbsp;馆内阅览 </td></tr>
</table>
<a id="recordnum" href="/record=b1234567~S1*chx">永久链接</a>
</div>
</body>
</html>
"""

ILAS_RESULTS = """\
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<title>书目检索结果</title>
</head>
<body>
<p>共检索到 23 条记录</p>
<div align="center">
<table width="98%" border="0" cellspacing="1" cellpadding="2" bgcolor="#008080">
<tr bgcolor="#CCCCCC"><td>题　名</td><td>责任者</td><td>出版者</td><td>页码</td><td>价格</td><td>索取号</td><td>详细</td></tr>
<tr><td align=left height=25 bgcolor="#FFFFFF">三国演义</td><td align=left height=25 bgcolor="#FFFFFF">罗贯中著</td><td align=left height=25 bgcolor="#FFFFFF">人民文学出版社 1998</td><td align=left height=25 bgcolor="#FFFFFF">980页</td><td align=left height=25 bgcolor="#FFFFFF">CNY39.00</td><td align=left height=25 bgcolor="#FFFFFF">I242.4/12</td><td align=center bgcolor="#FFFFFF"><a href="DispBibDetail?v_recno=000123&v_curdbno=0">详细</a></td></tr>
<tr><td align=left height=25 bgcolor="#FFFFFF">三国志</td><td align=left height=25 bgcolor="#FFFFFF">陈寿撰</td><td align=left height=25 bgcolor="#FFFFFF">中华书局 1982</td><td align=left height=25 bgcolor="#FFFFFF">1500页</td><td align=left height=25 bgcolor="#FFFFFF">CNY60.00</td><td align=left height=25 bgcolor="#FFFFFF">K236.04/3</td><td align=center bgcolor="#FFFFFF"><a href="DispBibDetail?v_recno=000456&v_curdbno=1">详细</a></td></tr>
</table>
</div>
<form name="search" method="post" action="IlaswebBib"><input type="text" name="v_value" value=""></form>
<form name="nextpage" method="post" action="IlaswebBib">
<input type="hidden" name="v_index" value="TITLE">
<input type="hidden" name="v_value" value="三国">
<input type="hidden" name="v_pagenum" value="10">
<input type="hidden" name="v_curscr" value="2">
</form>
<a href="javascript:document.nextpage.submit()">下一页</a>
</body>
</html>
"""

ILAS_DETAIL = """\
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<title>书目详细信息</title>
</head>
<body>
<div align="center">
<table width="95%" border="0">
<tr><td>题　名</td><td>三国演义 / 罗贯中著</td></tr>
<tr><td>作　者</td><td>罗贯中著</td></tr>
<tr><td>出版项</td><td>北京 : 人民文学出版社, 1998</td></tr>
<tr><td>ISBN</td><td>7-02-000220-X <input type="hidden" name="ISBN" value="7-02-000220-X"></td></tr>
<tr><td>索取号</td><td>I242.4/12</td></tr>
<tr><td>附注信息</td><td>四大名著之一</td></tr>
</table>
</div>
<div name="holding">
<table>
<tr><td>条码号</td><td>馆藏地点</td><td>流通类型</td><td>状态</td><td>应还日期</td><td>卷册说明</td></tr>
<tr><td>80012301</td><td>珠海校区图书馆 中文书库</td><td>中文图书</td><td>在馆</td><td></td><td></td></tr>
<tr><td>80012302</td><td>珠海校区图书馆 中文书库</td><td>中文图书</td><td>借出</td><td>2013-06-01</td><td></td></tr>
<tr><td colspan="6">共 2 册</td></tr>
</table>
</div>
</body>
</html>
"""


def gbk(text: str) -> bytes:
    return text.encode("gbk")


# --- normal forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Ｐｙｔｈｏｎ", "Python"),
        ("  数据\u3000结构  ", "数据 结构"),
        ("a\tb\n\nc", "a b c"),
        ("ｃ＋＋　编程", "c++ 编程"),
        ("   ", ""),
    ],
)
def test_normalise_query(given: str, expected: str) -> None:
    assert normalise_query(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("978-7-111-36789-5", "9787111367895"),
        ("ISBN 9787111367895", "9787111367895"),
        ("isbn:978 7 111 36789 5", "9787111367895"),
        ("7-02-000220-x", "702000220X"),
        ("0-306-40615-2", "0306406152"),
        ("97871-15230271", None),  # 2013's test page: wrong check digit
        ("978-7-111-36789-8", None),
        ("0-306-40615-3", None),
        ("1234567890123", None),  # no 978/979 prefix
        ("97871113678959", None),
        ("X306406152", None),
        ("９７８７１１１３６７８９９", None),  # full-width digits are not ASCII
        ("", None),
        ("9" * 60, None),
    ],
)
def test_normalise_isbn(given: str, expected: str | None) -> None:
    assert normalise_isbn(given) == expected


def test_find_isbn_and_isbn13() -> None:
    assert find_isbn("ISBN 978-7-111-36789-5 : CNY45.00") == "9787111367895"
    assert find_isbn("价格 CNY45.00 页 268") is None
    assert isbn13("0306406152") == "9780306406157"
    assert normalise_isbn(isbn13("702000220X")) == isbn13("702000220X")


@pytest.mark.parametrize(
    ("status", "available", "due"),
    [
        ("在架上", True, None),
        ("到期 2013-05-01", False, date(2013, 5, 1)),
        ("到期 13-05-01", False, date(2013, 5, 1)),
        ("DUE 05-01-13", False, date(2013, 5, 1)),
        ("到期 2013-13-45", False, None),
        ("馆内阅览", False, None),
        ("不在架上", False, None),
        ("AVAILABLE", True, None),
        ("NOT AVAILABLE", False, None),
    ],
)
def test_copy_status(status: str, available: bool, due: date | None) -> None:
    copy = holding("loc", "call", status)
    assert (copy.available, copy.due) == (available, due)
    assert on_shelf(status) is available


def test_due_date_from_its_own_cell() -> None:
    assert holding("loc", "call", "借出", "2013-06-01").due == date(2013, 6, 1)
    assert due_date("") is None


# --- INNOPAC result pages --------------------------------------------------------------


def test_innopac_results_as_2013_saw_them() -> None:
    page = parse_search(INNOPAC_RESULTS.encode(), BASE, UTF8)
    assert (page.first, page.last, page.total) == (13, 14, 14)
    first, second = page.books
    assert first.record_id == "b1234567"
    assert first.record_url == "http://202.116.13.244/record=b1234567~S1*chx"
    assert first.title == "狼のブルース"
    assert first.author == "五木寛之著"
    assert first.publisher == "東京 : 講談社, 1970.4"
    assert first.pages == "268p ; 19cm"
    assert first.year == "1970"
    assert first.status == "可借"
    assert first.isbn == "4-06-123456-X"
    assert first.cover_isbn == ""  # the check digit is wrong: not a cover key
    shelf, loan = first.holdings
    assert (shelf.location, shelf.call_number, shelf.status) == (
        "外文图书借阅区",
        "I313.45/1",
        "在架上",
    )
    assert shelf.available and shelf.due is None
    assert loan.call_number == "I313.45/1 c.2"
    assert not loan.available and loan.due == date(2013, 5, 1)
    # A row without a record number keeps its own (search position) link.
    assert second.record_id == ""
    assert second.record_url.startswith(BASE + "/search~S1*chx?/X(df)")
    assert (second.author, second.publisher, second.year) == (
        "",
        "New York : Springer, 2009.",
        "2009",
    )
    assert second.pages == "xii, 350 p. : ill. ; 24 cm"
    assert second.holdings[0].due == date(2013, 5, 1)


def test_innopac_results_in_english() -> None:
    page = INNOPAC_RESULTS.replace("关键词 (13-14 共 14)", "Keywords (13-14 of 14)")
    assert parse_search(page.encode(), BASE, UTF8).total == 14


def test_innopac_no_hits_page() -> None:
    page = (
        "<html><body><table class=browseScreen><tr><td>"
        "<h2>没有找到匹配的记录; 附近的 关键词 是:</h2></td></tr></table></body></html>"
    )
    found = parse_search(page.encode(), BASE, UTF8)
    assert (found.total, found.books) == (0, ())


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda p: p[: len(p) // 2], SchoolPageError),  # truncated
        (lambda p: p.replace("关键词 (13-14 共 14)", "关键词 (13-15 共 14)"), SchoolPageError),
        # The rows' own positions disagree with the count line (a page without the count
        # line is read: tests/unit/school/test_library_variants.py).
        (lambda p: p.replace("<br />13</td>", "<br />12</td>"), SchoolPageError),
        (lambda p: p.replace('class="briefcitTitle"', 'class="x"'), SchoolPageError),
        (lambda p: p.replace("<title>", "<title>HTTP Status 500 - "), SchoolServerError),
        (lambda p: "<html><body><form><input name=code></form></body></html>", SchoolPageError),
        (lambda p: "<html><body></body></html>", SchoolPageError),
    ],
)
def test_innopac_unreadable_results(change: object, error: type[Exception]) -> None:
    assert callable(change)
    with pytest.raises(error):
        parse_search(change(INNOPAC_RESULTS).encode(), BASE, UTF8)


def test_innopac_page_in_another_encoding_is_refused() -> None:
    with pytest.raises(SchoolPageError):
        parse_search(gbk(INNOPAC_RESULTS), BASE, UTF8)


def test_innopac_record_page() -> None:
    record = parse_record(INNOPAC_RECORD.encode(), UTF8)
    assert record.record_id == "b1234567"
    assert (record.title, record.author) == ("Python编程入门", "张伟著")
    assert record.publisher == "北京 : 机械工业出版社, 2012.01"
    assert record.isbn == "9787111367895"
    assert record.call_number == "TP311.56/12"
    assert record.description == "197页 : 图 ; 21cm"
    assert record.notes == "第一行"
    assert ("附注", "第二行") in record.fields
    assert record.fields[0] == ("题名", "Python编程入门 / 张伟著")
    (copy,) = record.holdings
    assert (copy.status, copy.available) == ("馆内阅览", False)


def test_innopac_missing_record() -> None:
    page = "<html><body><h2>No Such Record</h2></body></html>"
    with pytest.raises(QueryRejected):
        parse_record(page.encode(), UTF8)
    with pytest.raises(SchoolPageError):
        parse_record(b"<html><body><p>hello</p></body></html>", UTF8)
    with pytest.raises(SchoolPageError):
        parse_record(INNOPAC_RECORD.replace("题名", "其他").encode(), UTF8)


# --- ILAS pages ------------------------------------------------------------------------


def test_ilas_results() -> None:
    found = parse_results(gbk(ILAS_RESULTS), "text/html")
    assert found.total == 23
    first, second = found.rows
    assert (first.title, first.author, first.publisher) == (
        "三国演义",
        "罗贯中著",
        "人民文学出版社 1998",
    )
    assert (first.pages, first.price, first.call_number) == ("980页", "CNY39.00", "I242.4/12")
    assert (first.recno, first.dbno) == ("000123", "0")
    assert (second.recno, second.dbno) == ("000456", "1")
    assert found.next_form is not None
    assert ("v_curscr", "2") in found.next_form.fields
    assert ("v_value", "三国") in found.next_form.fields


def test_ilas_last_page_has_no_next_form() -> None:
    page = ILAS_RESULTS.replace('<a href="javascript:document.nextpage.submit()">下一页</a>', "")
    assert parse_results(gbk(page), "text/html").next_form is None


@pytest.mark.parametrize(
    "page",
    [
        ILAS_RESULTS[:600],
        ILAS_RESULTS.replace("题　名", "书名"),
        ILAS_RESULTS.replace("v_recno=000123", "x=1"),
        ILAS_RESULTS.replace('<form name="nextpage"', '<form name="other"'),
        "<html><body><p>系统忙</p></body></html>",
    ],
)
def test_ilas_unreadable_results(page: str) -> None:
    with pytest.raises(SchoolPageError):
        parse_results(gbk(page), "text/html")


def test_ilas_no_hits() -> None:
    page = "<html><body><p>没有检索到与“xyz”相关的记录</p></body></html>"
    found = parse_results(gbk(page), "text/html")
    assert (found.rows, found.total, found.next_form) == ((), 0, None)


def test_ilas_detail() -> None:
    detail = parse_detail(gbk(ILAS_DETAIL), "text/html")
    assert (detail.title, detail.author) == ("三国演义", "罗贯中著")
    assert detail.isbn == "702000220X"
    assert detail.call_number == "I242.4/12"
    assert detail.notes == "四大名著之一"
    assert detail.fields[0] == ("题 名", "三国演义 / 罗贯中著")
    shelf, loan = detail.holdings
    assert (shelf.location, shelf.status, shelf.available) == (
        "珠海校区图书馆 中文书库",
        "在馆",
        True,
    )
    assert (loan.available, loan.due, loan.call_number) == (False, date(2013, 6, 1), "I242.4/12")


def test_ilas_missing_record_and_other_pages() -> None:
    with pytest.raises(QueryRejected):
        parse_detail(gbk("<html><body><p>无此记录</p></body></html>"), "text/html")
    with pytest.raises(SchoolPageError):
        parse_detail(gbk("<html><body><p>欢迎</p></body></html>"), "text/html")
    with pytest.raises(SchoolPageError):
        parse_detail(gbk(ILAS_DETAIL)[:300], "text/html")


# --- record URLs (the SSRF gate of /web/book) -----------------------------------------


def catalogue(url: str) -> MainCatalogueConfig:
    return MainCatalogueConfig(base_url=url, connect_timeout_s=1, total_timeout_s=5, user_agent="t")


def zhuhai(url: str) -> ZhuhaiCatalogueConfig:
    return ZhuhaiCatalogueConfig(
        base_url=url, connect_timeout_s=1, total_timeout_s=5, user_agent="t"
    )


@pytest.fixture
def clients() -> tuple[InnopacClient, IlasClient]:
    http = httpx.AsyncClient()
    innopac = InnopacClient(catalogue(BASE), http)
    ilas = IlasClient(zhuhai("http://202.116.24.97/"), http)
    return innopac, ilas


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://202.116.13.244/record=b1234567~S1*chx", "b1234567"),
        ("http://202.116.13.244/record=b1234567", "b1234567"),
        ("http://202.116.13.244:80/record=b12345678~S1*chx", "b12345678"),
        ("HTTP://202.116.13.244/record=b1234567x", "b1234567x"),
        ("https://202.116.13.244/record=b1234567~S1*chx", None),
        ("http://202.116.13.244:8080/record=b1234567~S1*chx", None),
        ("http://evil.example/record=b1234567~S1*chx", None),
        ("http://202.116.13.244.evil.example/record=b1234567", None),
        ("http://evil@202.116.13.244/record=b1234567", None),
        ("http://202.116.13.244@evil.example/record=b1234567", None),
        ("http://202.116.13.244\\@evil.example/record=b1234567", None),
        ("http://202.116.13.244/record=b1234567~S1*chx?x=1", None),
        ("http://202.116.13.244/record=b1234567#frag", None),
        ("http://202.116.13.244/record=b123456", None),
        ("http://202.116.13.244/other/record=b1234567", None),
        ("http://202.116.13.244/search~S1*chx?/X(df)/1%2C1%2C1%2CB/frameset", None),
        ("http://202.116.13.244/record=%62%31234567", None),
        ("http://202.116.13.244/%2e%2e/record=b1234567", None),
        ("http://202.116.13.244/record=b1234567%00", None),
        ("http://202.116.13.244/record=b1234567\n", None),
        ("http://202.116.13.244/ record=b1234567", None),
        ("//202.116.13.244/record=b1234567", None),
        ("ftp://202.116.13.244/record=b1234567", None),
        ("javascript:alert(1)//202.116.13.244/record=b1234567", None),
        ("http://２０２.116.13.244/record=b1234567", None),
        ("/record=b1234567", None),
        ("", None),
    ],
)
def test_innopac_record_urls(
    clients: tuple[InnopacClient, IlasClient], url: str, expected: str | None
) -> None:
    innopac, ilas = clients
    assert innopac.record_id_from_url(url) == expected
    assert ilas.record_id_from_url(url) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://202.116.24.97/cgi-bin/DispBibDetail?v_recno=000123&v_curdbno=0", "000123"),
        ("http://202.116.24.97/cgi-bin/DispBibDetail?v_recno=000456&v_curdbno=1", "000456.1"),
        ("http://202.116.24.97/cgi-bin/DispBibDetail?v_curdbno=0&v_recno=000123", None),
        ("http://202.116.24.97/cgi-bin/DispBibDetail?v_recno=1&v_curdbno=0&x=http://e", None),
        ("http://202.116.24.97/cgi-bin/IlaswebBib?v_recno=1&v_curdbno=0", None),
        ("http://202.116.24.97/cgi-bin/DispBibDetail?v_recno=%31&v_curdbno=0", None),
        ("http://evil.example/cgi-bin/DispBibDetail?v_recno=1&v_curdbno=0", None),
        ("http://a@202.116.24.97/cgi-bin/DispBibDetail?v_recno=1&v_curdbno=0", None),
    ],
)
def test_ilas_record_urls(
    clients: tuple[InnopacClient, IlasClient], url: str, expected: str | None
) -> None:
    _, ilas = clients
    assert ilas.record_id_from_url(url) == expected


def test_record_urls_under_a_path() -> None:
    http = httpx.AsyncClient()
    client = InnopacClient(catalogue("http://127.0.0.1:8013/opac/"), http)
    assert client.record_id_from_url("http://127.0.0.1:8013/opac/record=b1234567") == "b1234567"
    assert client.record_id_from_url("http://127.0.0.1:8013/record=b1234567") is None
    assert client.record_id_from_url("http://127.0.0.1:8013/opacx/record=b1234567") is None


def test_search_url_encodes_the_query() -> None:
    client = InnopacClient(catalogue(BASE), httpx.AsyncClient())
    url = client.search_url("数据 (结构)&/x", 2, True)
    assert url == (
        "http://202.116.13.244/availlim/search~S1*chx?/X(%E6%95%B0%E6%8D%AE%20%E7%BB%93%E6%9E%84"
        "%20%26%2Fx)&SORT=D/X(%E6%95%B0%E6%8D%AE%20%E7%BB%93%E6%9E%84%20%26%2Fx)&SORT=D"
        "&SUBKEY=(%E6%95%B0%E6%8D%AE%20%E7%BB%93%E6%9E%84%20%26%2Fx)/13,40,40,B/browse"
    )


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        ("image/jpeg", b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        ("image/png; charset=x", b"\x89PNG\r\n\x1a\nrest", "image/png"),
        ("IMAGE/GIF", b"GIF89a...", "image/gif"),
        ("image/jpeg", b"<html>", None),
        ("text/html", b"\xff\xd8\xff\xe0", None),
        ("image/svg+xml", b"<svg/>", None),
        (None, b"\xff\xd8\xff", None),
    ],
)
def test_image_type(kind: str | None, body: bytes, expected: str | None) -> None:
    assert image_type(kind, body) == expected


def test_settings_refuse_bad_base_urls() -> None:
    for url in ("ftp://x", "http://user:pw@host/", "http:///path", "http://h/?q=1"):
        with pytest.raises(ValueError, match="base_url"):
            MainCatalogueConfig(base_url=url)
