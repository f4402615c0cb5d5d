-- The ERP's standard module catalogue. ON CONFLICT keeps an existing
-- catalogue (and its ids) untouched.
INSERT INTO modules (key, name) VALUES
    ('payments', 'Payments'),
    ('expenses', 'Expenses'),
    ('messaging', 'Messaging'),
    ('reports', 'Reports'),
    ('admin', 'Administration')
ON CONFLICT (key) DO NOTHING;

INSERT INTO pages (module_id, key, name)
SELECT m.id, p.key, p.name
FROM (VALUES
    ('payments', 'list', 'Payments list'),
    ('payments', 'create', 'New payment'),
    ('payments', 'refunds', 'Refunds'),
    ('expenses', 'list', 'Expenses list'),
    ('expenses', 'submit', 'Submit expense'),
    ('expenses', 'approvals', 'Approvals'),
    ('messaging', 'threads', 'Threads'),
    ('reports', 'usage', 'Usage report'),
    ('reports', 'finance', 'Finance report'),
    ('admin', 'roles', 'Roles and permissions'),
    ('admin', 'users', 'Users'),
    ('admin', 'ops', 'Operations')
) AS p(module_key, key, name)
JOIN modules m ON m.key = p.module_key
ON CONFLICT (module_id, key) DO NOTHING;
