-- The action catalog grows: `deploy` (a stack/service rolled out across nodes) and `pull` (the deploy checkout).
-- `params` holds what a kind needs beyond (node, service): e.g. the nodes and max_parallel of a rollout.
ALTER TABLE actions DROP CONSTRAINT IF EXISTS actions_kind_check;
ALTER TABLE actions ADD CONSTRAINT actions_kind_check CHECK (kind IN ('start', 'stop', 'restart', 'deploy', 'pull'));
ALTER TABLE actions ADD COLUMN IF NOT EXISTS params jsonb NOT NULL DEFAULT '{}'::jsonb;
-- The planner task whose diagnosis proposed this action, when one did.
ALTER TABLE actions ADD COLUMN IF NOT EXISTS task_id text;
