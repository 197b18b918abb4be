from cloudrescue.cli import main

main()
