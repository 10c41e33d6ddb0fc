"""The SQL tokenizer guard: one read statement, quoting and comments understood."""

import pytest

from sql_viewer.guard import QueryRefused, check_read_statement, split_statements, tokenize


@pytest.mark.parametrize(
    "text",
    [
        "SELECT created_at, updated_by, deleted FROM t",
        "select 'DELETE FROM t; DROP TABLE t' as note",
        'select "weird;name" from t',
        "select $$ ; commit; $$",
        "select $body$ $$ ; $body$",
        "select E'it\\'s; fine'",
        "select 'it''s; fine'",
        "select 1 -- trailing; comment",
        "/* a /* nested ; */ still comment ; */ select 1",
        "select 1;",
        "select 1 ;  -- done\n ;",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "VALUES (1), (2)",
        "TABLE wearable_readings",
        "(SELECT 1) UNION (SELECT 2)",
        "EXPLAIN SELECT 1",
        "select a$b from t",
        "select U&'d\\0061t\\+000061; x'",
    ],
)
def test_read_statements_are_accepted(text):
    statement = check_read_statement(text)
    assert statement.keyword in {"SELECT", "WITH", "VALUES", "TABLE", "EXPLAIN", "("}


@pytest.mark.parametrize(
    "text",
    [
        "select 1; select 2",
        "select 1; delete from t",
        "commit; delete from t",
        "select 'a''b'; drop table t",
        "select E'\\\\'; drop table t -- '",
        "select $$x$$; drop table t",
        "select 1 /* ; */ ; drop table t",
        "select 1 -- x\n; drop table t",
        'select "a"";"; drop table t',
    ],
)
def test_multiple_statements_are_refused(text):
    with pytest.raises(QueryRefused, match="one statement per request") as info:
        check_read_statement(text)
    assert info.value.position is not None
    assert text[info.value.position - 1 :].lstrip().lower().startswith(("select", "drop", "delete"))


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("SET statement_timeout = 0", "SET"),
        ("set local statement_timeout to 0", "SET"),
        ("RESET ALL", "RESET"),
        ("BEGIN READ WRITE", "BEGIN"),
        ("start transaction read write", "START"),
        ("discard all", "DISCARD"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("/* hi */ -- there\n  commit", "COMMIT"),
    ],
)
def test_session_statements_are_refused_with_a_reason(text, keyword):
    with pytest.raises(QueryRefused, match=f"^{keyword} is refused"):
        check_read_statement(text)


@pytest.mark.parametrize(
    "text",
    [
        "DELETE FROM t",
        "update t set a = 1",
        "insert into t values (1)",
        "COPY t TO PROGRAM 'id'",
        "DO $$ BEGIN NULL; END $$",
        "CALL p()",
        "GRANT ALL ON t TO PUBLIC",
        "VACUUM t",
        "CREATE TEMP TABLE x (a int)",
        "EXECUTE p",
    ],
)
def test_non_read_statements_are_refused(text):
    with pytest.raises(QueryRefused, match="only read queries are allowed"):
        check_read_statement(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("select 'oops", "unterminated string"),
        ('select "oops', "unterminated quoted identifier"),
        ("select $$oops", "unterminated dollar-quoted"),
        ("select 1 /* oops", "unterminated /\\* comment"),
        ("   ", "the query is empty"),
        ("-- only a comment", "the query is empty"),
    ],
)
def test_unterminated_or_empty_text_is_refused(text, message):
    with pytest.raises(QueryRefused, match=message):
        check_read_statement(text)


def test_statement_keeps_its_offset_for_error_positions():
    text = "  /* note */ select nosuch from t;"
    (statement,) = split_statements(text)
    assert statement.start == text.index("select")
    assert statement.text == "select nosuch from t"


def test_escape_string_prefix_is_one_token():
    tokens = tokenize("select E'a\\'b', x'ff', nE'q'")
    strings = [t.text for t in tokens if t.kind == "string"]
    assert strings == ["E'a\\'b'", "x'ff'", "'q'"]
