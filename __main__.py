"""enclave's Pulumi program (`pulumi up -s <stack>`): all of it lives in `components/`."""
from components.program import main

main()
