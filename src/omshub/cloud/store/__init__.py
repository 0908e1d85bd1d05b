"""The database: engine and sessions, schema and migrations, bulk SQL.

The schema's tables are declared in `models` (meters, telegrams, readings, accounts, …) and
`models_billing` (properties, units, occupants, weather). Importing this package loads both, so every
foreign key between them resolves whichever one a caller imports.
"""

from omshub.cloud.store import models, models_billing, models_exports  # noqa: F401
