from services.orchestrator.service import main

main()
