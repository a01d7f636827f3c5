"""Read repositories: one module per topic holding its SQL, shared by REST and the interop outputs.

An endpoint parses, calls a repository and shapes the rows; NGSI-LD and DATEX II out call the
same functions instead of importing endpoint modules.
"""
