"""The database: engine and sessions, schema and migrations, bulk SQL.

The schema's tables are declared in `models` (meters, telegrams, readings, accounts, …) and
`models_billing` (properties, units, occupants, weather), `models_customers` (customer information).
Importing this package loads them all, so every
foreign key between them resolves whichever one a caller imports.
"""

from omshub.cloud.store import models, models_billing, models_customers, models_exports  # noqa: F401
