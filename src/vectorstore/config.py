"""Where the store lives: a URL plus options, from arguments or the environment.

Resolution order when no URL is given:

1. ``VECTORSTORE_URL``;
2. the product spec's ``DB_HOST``, ``DB_PORT``, ``DB_NAME``, ``DB_USER``, ``DB_PASSWORD`` (or
   ``DB_PASSWORD_FILE``, a file holding it), ``DB_SSL`` (true: ``sslmode=verify-full``, against
   ``DB_SSL_ROOT_CERT`` or the system's CAs), ``DB_POOL_MIN``, ``DB_POOL_MAX``,
   ``DB_CONNECTION_TIMEOUT``, ``DB_QUERY_TIMEOUT`` (used when ``DB_HOST`` or ``DB_NAME`` is set) — a
   PostgreSQL URL (``DB_HOST`` may be a Unix-socket directory, ``/var/run/postgresql``);
3. ``sqlite:///./data/vectorstore.db``.

Durations in ``DB_*`` variables are milliseconds when bare (``10000``), as in the
product spec; anywhere a duration is accepted, a unit may be given (``10s``,
``500ms``, ``2m``). Options given as keyword arguments override URL query
parameters.

Passwords are never shown: :func:`redact` is what every message, ``repr``, log line and command
output shows of a URL or connection string (docs/security.md).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from vectorstore.errors import ConfigError

DEFAULT_URL = "sqlite:///./data/vectorstore.db"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: object, bare_unit: str = "s", name: str = "duration") -> float:
    """Seconds from ``10``, ``"10s"``, ``"500ms"``...; bare numbers are in ``bare_unit``."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a duration such as 10s or 500ms, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value) * _UNIT_SECONDS[bare_unit]
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{name} must be a duration such as 10s or 500ms, got {value!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or bare_unit).lower()]
    if seconds < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    return seconds


def parse_bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "require"):
        return True
    if text in ("0", "false", "no", "off", "disable", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def parse_int(value: object, name: str, low: int = 0, high: int = 2**31) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be from {low} to {high}, got {number}")
    return number


#: Options every backend accepts from the URL or as keywords. Each honours them as far as it can
#: (an exact backend is exact at every size whatever ``exact_search_below`` says).
COMMON_OPTIONS: dict[str, Any] = {
    # Collections with fewer vectors are searched exactly; from this many on, a backend may take
    # its approximate path (an HNSW index, quantized codes). 0: the approximate path at any size.
    "exact_search_below": 10_000,
    # The search effort of searches that do not pass ef_search=: how many candidates an
    # approximate search considers (HNSW's ef_search; the quantized stages' width). Backends
    # choose their own default, the one that holds their declared recall.
    "ef_search": 40,
    # The cross-cutting layer (deadlines, retries, circuit breaker): see vectorstore.resilience.
    "deadline": "auto",
    "retries": 2,
    "retry_backoff": 0.05,
    "retry_backoff_max": 1.0,
    "breaker_failures": 5,
    "breaker_reset": 1.0,
    "slow_call": 1.0,  # (per 1,000 records of a write, as the deadline)
    # Prometheus metrics (the metrics extra) and OpenTelemetry spans (the tracing extra).
    "metrics": False,
    "tracing": False,
}


@attrs.frozen(slots=True)
class StoreConfig:
    """A store URL and its options.

    :func:`resolve` makes one from a URL and keyword options (``options`` holds the keywords
    only). :meth:`bind` then checks it against the options a backend knows, once, in one place for
    every backend: the URL's query and the keywords are merged (keywords win), unknown names are an
    error, and the result's ``options`` hold every known option (defaults filled in), its ``url``
    the URL without them (a backend's driver parameters stay), and ``passthrough`` the driver
    parameters given as keywords. Its ``repr`` shows no secret (:func:`redact`); ``url`` itself
    holds the password, for the backend: never print it as it is."""

    url: str = attrs.field(repr=lambda url: repr(redact(url)))
    scheme: str
    options: Mapping[str, Any] = attrs.field(factory=dict, repr=lambda options: repr(redacted_options(options)))
    passthrough: Mapping[str, str] = attrs.field(factory=dict,
                                                 repr=lambda options: repr(redacted_options(options)))

    @property
    def parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self.url)

    def bind(self, known: Mapping[str, Any], accepts: Callable[[str], bool] | None = None,
             accepts_help: str = "") -> StoreConfig:
        """Check and complete the options against ``known`` (names and defaults, the common
        options included by the caller); ``accepts`` tells which other names the backend's driver
        takes (kept in the URL, or in ``passthrough`` when given as keywords). Idempotent."""
        parts = self.parts
        ours: dict[str, Any] = {}
        kept: list[tuple[str, str]] = []
        unknown: list[str] = []
        seen: set[str] = set()
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if key in seen:
                raise ConfigError(f"option {key!r} appears twice in the {self.scheme}:// URL; give it once")
            seen.add(key)
            if key in known:
                ours[key] = value
            elif accepts is not None and accepts(key):
                kept.append((key, value))
            else:
                unknown.append(key)
        passthrough = dict(self.passthrough)
        for key, value in self.options.items():
            if key in known:
                ours[key] = value
            elif accepts is not None and accepts(key):
                passthrough[key] = str(value)
            else:
                unknown.append(key)
        if unknown:
            names = ", ".join(sorted(known)) or "(none)"
            extra = f", or {accepts_help}" if accepts_help else ""
            raise ConfigError(
                f"unknown option(s) {', '.join(sorted(set(unknown)))} for {self.scheme}:// stores; "
                f"known options: {names}{extra}. Fix the name, or drop it from the URL / keyword arguments"
            )
        url = self.url
        if parts.query:  # (only the query changes: urlunsplit would drop sqlite:////abs's empty host)
            base, _, rest = url.partition("?")
            _, hash_, fragment = rest.partition("#")
            query = urllib.parse.urlencode(kept, quote_via=urllib.parse.quote)
            url = base + ("?" + query if query else "") + hash_ + fragment
        return StoreConfig(url=url, scheme=self.scheme, options={**known, **ours}, passthrough=passthrough)


#: libpq connection parameters whose values are secrets: :func:`redact` never shows them.
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
#: What a hidden secret is shown as.
MASK = "***"

_URL_START = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# ``key=value`` of a secret parameter in a libpq connection string (``host=db password=...``): the
# value is single-quoted (backslash escapes inside; an unclosed quote runs to the end) or runs to
# the next white space (backslash escapes too), as libpq reads it.
_KEY_VALUE_SECRET = re.compile(
    r"\b(" + "|".join(sorted(SECRET_PARAMETERS)) + r")(\s*=\s*)('(?:\\[\s\S]|[^'\\])*'?|(?:\\[\s\S]|[^\s\\])*)",
    re.IGNORECASE)
# ``user:password@`` anywhere in a text that is not a URL (a URL missing its ``://``, a message).
_USERINFO = re.compile(r"([^\s:/@'\"]*):[^\s@]*@")


def redact(text: str) -> str:
    """``text`` as it may be shown (messages, reprs, logs, command output), whatever it is: a store
    URL, a libpq connection string (``host=db password=...``) given where a URL was expected, or a
    message quoting either. A URL keeps its scheme, user, hosts, path and options, with its password
    shown as ``***`` (``postgresql://app:***@db/app``) and so the value of every secret option
    (:data:`SECRET_PARAMETERS`: ``?password=***``); in any other text, the values of secret
    ``key=value`` parameters and the password of anything shaped like ``user:password@`` are masked.

    The one redaction of the project: every place that may show a URL or a connection string goes
    through it (or :func:`display_url`, built on it). When unsure what is a password, it hides more
    (a URL whose user part is ambiguous loses up to its last ``@``), never less."""
    if not _URL_START.match(text):
        return _USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", _mask_key_values(text))
    scheme, user, has_password, rest = _split_url(text)
    base, question, query = rest.partition("?")
    shown = f"{scheme}://"
    if user is not None:
        shown += f"{user}:{MASK}@" if has_password else f"{user}@"
    return shown + _mask_key_values(base) + question + _mask_query(query)


def display_url(url: str) -> str:
    """``url`` as a short name of its store (metrics labels): scheme, user, hosts, port and path,
    never the password nor the options (which may hold credentials too). Anything that is not a
    URL is shown as :func:`redact` shows it."""
    if not _URL_START.match(url):
        return redact(url)
    scheme, user, _, rest = _split_url(url)
    base = rest.partition("?")[0].partition("#")[0]
    return f"{scheme}://{user + '@' if user else ''}{_mask_key_values(base)}"


def _split_url(url: str) -> tuple[str, str | None, bool, str]:
    """A URL's scheme (lower case), user (None without an ``@``), whether it gives a password, and
    the rest (hosts, path, query). The user part ends at the last ``@`` before the query (or, when
    there is none before it, the last ``@`` at all, unless a path comes first): wherever libpq (which
    does not stop at ``?`` or ``#``) or Python (which takes the last ``@``) finds a password, it is
    inside."""
    scheme, _, rest = url.partition("://")
    slash = rest.find("/")
    query = rest.find("?", max(slash, 0))
    at = rest.rfind("@", 0, query) if query >= 0 else -1
    if at < 0 and (slash < 0 or query < 0):
        at = rest.rfind("@")
    if at < 0:
        return scheme.lower(), None, False, rest
    user, _, password = rest[:at].partition(":")
    return scheme.lower(), user, bool(password), rest[at + 1:]


def _mask_key_values(text: str) -> str:
    return _KEY_VALUE_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def _mask_query(query: str) -> str:
    pieces = []
    for piece in query.split("&") if query else ():
        key, equals, _ = piece.partition("=")
        if equals and urllib.parse.unquote(key).strip().lower() in SECRET_PARAMETERS:
            piece = f"{key}={MASK}"
        pieces.append(piece)
    return "&".join(pieces)


def redacted_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` (keyword options, libpq parameters) with the values of secret ones masked."""
    return {key: MASK if str(key).lower() in SECRET_PARAMETERS else value for key, value in options.items()}


def env_url(environ: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """The URL (and options) the environment asks for, per the resolution order above."""
    env = os.environ if environ is None else environ
    if env.get("VECTORSTORE_URL"):
        return env["VECTORSTORE_URL"], {}
    if env.get("DB_HOST") or env.get("DB_NAME"):
        user = urllib.parse.quote(env.get("DB_USER", "postgres"), safe="")
        password = env_password(env)
        auth = user + (":" + urllib.parse.quote(password, safe="") if password else "")
        host = env.get("DB_HOST", "localhost")
        if host.startswith("/"):  # a Unix-socket directory: percent-encoded, as libpq reads it
            host = urllib.parse.quote(host, safe="")
        port = parse_int(env.get("DB_PORT", "5432"), "DB_PORT", 1, 65535)
        name = urllib.parse.quote(env.get("DB_NAME", "postgres"), safe="")
        url = f"postgresql://{auth}@{host}:{port}/{name}"
        options: dict[str, Any] = {}
        if "DB_SSL" in env:
            # TLS means the server is verified, not only that the traffic is encrypted (require
            # would accept anyone on the path who answers with any certificate): verify-full, against
            # DB_SSL_ROOT_CERT when given, else the system's trusted CAs (libpq >= 16).
            if parse_bool(env["DB_SSL"], "DB_SSL"):
                options["sslmode"] = "verify-full"
                options["sslrootcert"] = env.get("DB_SSL_ROOT_CERT") or "system"
            else:
                options["sslmode"] = "disable"
        if "DB_POOL_MIN" in env:
            options["pool_min"] = parse_int(env["DB_POOL_MIN"], "DB_POOL_MIN", 0, 1000)
        if "DB_POOL_MAX" in env:
            options["pool_max"] = parse_int(env["DB_POOL_MAX"], "DB_POOL_MAX", 1, 1000)
        if "DB_CONNECTION_TIMEOUT" in env:
            options["connect_timeout"] = parse_duration(env["DB_CONNECTION_TIMEOUT"], "ms", "DB_CONNECTION_TIMEOUT")
        if "DB_QUERY_TIMEOUT" in env:
            options["statement_timeout"] = parse_duration(env["DB_QUERY_TIMEOUT"], "ms", "DB_QUERY_TIMEOUT")
        return url, options
    return DEFAULT_URL, {}


def env_password(env: Mapping[str, str]) -> str | None:
    """``DB_PASSWORD``, or the contents of the file ``DB_PASSWORD_FILE`` names (a mounted secret)
    without its one trailing line break; None when neither is set. ConfigError when both are set,
    or when the file cannot be read, is not UTF-8 or is empty (the message names the file, never its
    contents)."""
    path = env.get("DB_PASSWORD_FILE")
    if not path:
        return env.get("DB_PASSWORD") or None
    if env.get("DB_PASSWORD"):
        raise ConfigError("both DB_PASSWORD and DB_PASSWORD_FILE are set; set only one of them (DB_PASSWORD_FILE "
                          "names a file holding the password, e.g. a mounted secret)")
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"DB_PASSWORD_FILE names {path!r}, which cannot be read ({reason}); point it at a "
                          "readable file holding the password, or unset it") from None
    try:
        password = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"the file DB_PASSWORD_FILE names ({path!r}) is not UTF-8 text; write the password "
                          "in it as UTF-8") from None
    password = password.removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConfigError(f"the file DB_PASSWORD_FILE names ({path!r}) is empty; write the password in it, or "
                          "unset DB_PASSWORD_FILE to connect without one")
    return password


def resolve(url: str | None = None, options: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None) -> StoreConfig:
    """Build a :class:`StoreConfig` from a URL (or the environment) and keyword options."""
    merged: dict[str, Any] = {}
    if url is None:
        url, merged = env_url(environ)
    if not isinstance(url, str):
        raise ConfigError(f"the store URL must be a string, got {type(url).__name__}; use sqlite:///path.db, "
                          "postgresql://user@host/db or memory://")
    if "://" not in url:
        # (Shown redacted: it may be a libpq connection string, "host=db password=...".)
        raise ConfigError(
            f"store URL {redact(url)!r} has no scheme; use sqlite:///path.db, postgresql://user@host/db or "
            "memory:// (a libpq connection string such as 'host=db dbname=app' is not a store URL: write it as "
            "postgresql://user@db/app, its other parameters as ?name=value options)"
        )
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "postgres":
        scheme = "postgresql"
    merged.update(options or {})
    return StoreConfig(url=url, scheme=scheme, options=merged)
