"""Standard outputs for partners' systems: NGSI-LD (FIWARE Smart Data Models) and DATEX II 3."""
