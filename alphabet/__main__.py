from alphabet.cli import run

run()
