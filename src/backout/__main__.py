from backout.cli import main

main()
