from services.guard.service import main

main()
