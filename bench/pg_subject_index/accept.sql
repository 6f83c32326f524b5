-- One accepted birth notification as the PostgreSQL store writes it: the
-- record (a sealed payload of about 1.4 KB, a subject that is a hash) and
-- its four routes' deliveries, one transaction.
BEGIN;
WITH r AS (
  INSERT INTO records (id, client_id, source, record_type, received_at, request_sha256, canonical, subject)
  VALUES (gen_random_uuid()::text, 'bench', 'canonical', 'birth-notification', now()::text,
          sha256(random()::text::bytea), convert_to(repeat(md5(random()::text), 44), 'UTF8'),
          md5(random()::text))
  RETURNING id, subject)
INSERT INTO deliveries (record_id, route, destination, status, next_attempt_ms, subject)
SELECT r.id, v.route, v.route, 'pending', 0, r.subject
  FROM r, (VALUES ('bn-opencrvs'), ('bn-opencrvs-v1'), ('bn-fhir-r4'), ('bn-examplia')) v(route);
COMMIT;
