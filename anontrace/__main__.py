"""`python -m anontrace` runs the command-line tool."""

from anontrace.cli import main

main()
