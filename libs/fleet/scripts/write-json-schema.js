// Writes docs/fleet.schema.json from the built zod schema. Run after `npx tsc -b`: npm run schema -w @steward/fleet
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { FLEET_JSON_SCHEMA_PATH, fleetJsonSchemaText } from "../dist/fleet-json-schema.js";

const file = fileURLToPath(new URL(`../../../${FLEET_JSON_SCHEMA_PATH}`, import.meta.url));
writeFileSync(file, fleetJsonSchemaText());
console.log(`wrote ${file}`);
