"""Pure layouts of the billing exports (docs/exports.md): reading export v1, SAP IS-U upload rows,
ARGE HeiWaKo / bved fixed-width records, cron schedules. No database here."""
