"""The rule files shipped with anontrace, installed as the package `anontrace.profiles`."""
