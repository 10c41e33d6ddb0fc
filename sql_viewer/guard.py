"""The app-level SQL check: one read statement per request.

This is the second layer. The first is how the viewer connects (the read-only role,
a READ ONLY transaction with fixed limits, the extended protocol). The tokenizer
understands PostgreSQL's quoting (single quotes, E'' escapes, double-quoted
identifiers, dollar quotes) and comments (`--`, nested `/* */`), so a semicolon or
keyword inside a string, identifier or comment never counts, and a column named
`created_at` or `updated_by` is just a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Statement kinds PostgreSQL can run as a cursor (DECLARE ... FOR), plus EXPLAIN.
READ_KEYWORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "EXPLAIN"})
SESSION_KEYWORDS = frozenset(
    {
        "SET",
        "RESET",
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT",
        "RELEASE",
        "PREPARE",
        "DISCARD",
        "LOAD",
        "LISTEN",
        "DECLARE",
        "FETCH",
        "MOVE",
        "CLOSE",
    }
)

_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")


class QueryRefused(ValueError):
    """The text is not exactly one read statement; `position` is 1-based, or None."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word, string, ident, dollar, number, param, op, semicolon
    text: str
    start: int  # 0-based offset in the original text


@dataclass(frozen=True, slots=True)
class Statement:
    text: str  # from its first token to the end of its last token
    start: int  # 0-based offset of `text` in the original request
    keyword: str  # upper-cased first word, or "(" for a parenthesised query


def tokenize(text: str) -> list[Token]:
    """Split SQL into tokens, skipping whitespace and comments; refuse unterminated ones."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            i = _skip_block_comment(text, i)
        elif ch == "'":
            end = _skip_quoted(text, i, "'", backslash=_is_escape_string(text, i))
            tokens.append(Token("string", text[i:end], i))
            i = end
        elif ch == '"':
            end = _skip_quoted(text, i, '"', backslash=False)
            tokens.append(Token("ident", text[i:end], i))
            i = end
        elif ch == "$" and (match := _DOLLAR_TAG.match(text, i)):
            closing = match.group(0)
            end = text.find(closing, match.end())
            if end < 0:
                raise QueryRefused(
                    f"unterminated dollar-quoted string {closing}: add the closing {closing}",
                    i + 1,
                )
            tokens.append(Token("dollar", text[i : end + len(closing)], i))
            i = end + len(closing)
        elif ch == "$" and i + 1 < n and text[i + 1].isdigit():
            j = i + 1
            while j < n and text[j].isdigit():
                j += 1
            tokens.append(Token("param", text[i:j], i))
            i = j
        elif match := _WORD.match(text, i):
            tokens.append(Token("word", match.group(0), i))
            i = match.end()
        elif ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "._"):
                j += 1
            tokens.append(Token("number", text[i:j], i))
            i = j
        elif ch == ";":
            tokens.append(Token("semicolon", ch, i))
            i += 1
        else:
            tokens.append(Token("op", ch, i))
            i += 1
    return _merge_prefixed_strings(tokens)


def _is_escape_string(text: str, quote: int) -> bool:
    """True for E'...' (backslash escapes), where the E is a word glued to the quote."""
    if quote == 0 or text[quote - 1] not in "eE":
        return False
    return quote == 1 or not (text[quote - 2].isalnum() or text[quote - 2] in "_$")


def _merge_prefixed_strings(tokens: list[Token]) -> list[Token]:
    """Fold E'..', X'..', B'..', N'..' and U&'..' prefixes into their string token."""
    merged: list[Token] = []
    for token in tokens:
        if token.kind in ("string", "ident") and merged:
            prev = merged[-1]
            glued = prev.start + len(prev.text) == token.start
            if glued and prev.kind == "word" and prev.text.upper() in ("E", "X", "B", "N"):
                merged[-1] = Token("string", prev.text + token.text, prev.start)
                continue
            if glued and prev.kind == "op" and prev.text == "&" and len(merged) >= 2:
                word = merged[-2]
                if word.kind == "word" and word.text.upper() == "U":
                    merged[-2:] = [Token(token.kind, "U&" + token.text, word.start)]
                    continue
        merged.append(token)
    return merged


def _skip_block_comment(text: str, i: int) -> int:
    depth, j = 0, i
    while j < len(text):
        if text.startswith("/*", j):
            depth += 1
            j += 2
        elif text.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    raise QueryRefused("unterminated /* comment: add the closing */", i + 1)


def _skip_quoted(text: str, i: int, quote: str, *, backslash: bool) -> int:
    j = i + 1
    while j < len(text):
        ch = text[j]
        if backslash and ch == "\\":
            j += 2
        elif ch == quote:
            if text.startswith(quote * 2, j):
                j += 2
            else:
                return j + 1
        else:
            j += 1
    what = "quoted identifier" if quote == '"' else "string"
    raise QueryRefused(f"unterminated {what}: add the closing {quote}", i + 1)


def split_statements(text: str) -> list[Statement]:
    """The non-empty statements of `text`, split at top-level semicolons."""
    statements: list[Statement] = []
    current: list[Token] = []
    for token in [*tokenize(text), Token("semicolon", ";", len(text))]:
        if token.kind != "semicolon":
            current.append(token)
            continue
        if current:
            first, last = current[0], current[-1]
            keyword = first.text.upper() if first.kind == "word" else first.text
            end = last.start + len(last.text)
            statements.append(Statement(text[first.start : end], first.start, keyword))
        current = []
    return statements


def check_read_statement(text: str) -> Statement:
    """Return the single read statement in `text`, or raise `QueryRefused` saying why."""
    statements = split_statements(text)
    if not statements:
        raise QueryRefused("the query is empty: type a SELECT statement")
    if len(statements) > 1:
        raise QueryRefused(
            f"one statement per request: found {len(statements)} statements "
            f"(the second starts at position {statements[1].start + 1}); run them one at a time",
            statements[1].start + 1,
        )
    statement = statements[0]
    if statement.keyword in READ_KEYWORDS or statement.keyword == "(":
        return statement
    position = statement.start + 1
    if statement.keyword in SESSION_KEYWORDS:
        raise QueryRefused(
            f"{statement.keyword} is refused: the viewer runs each query in its own read-only "
            "transaction with fixed limits that queries cannot change",
            position,
        )
    raise QueryRefused(
        f"only read queries are allowed (SELECT, WITH, VALUES, TABLE, EXPLAIN); "
        f"this statement starts with {statement.keyword}",
        position,
    )
