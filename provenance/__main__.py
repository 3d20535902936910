from provenance.launch import main

main()
