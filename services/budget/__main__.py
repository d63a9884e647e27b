from services.budget.service import main

main()
