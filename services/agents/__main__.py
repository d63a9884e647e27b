from services.agents.service import main

main()
