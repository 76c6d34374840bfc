# fish completion for vutf, generated from its command tree by
#   python -m vutf_cli.cli.completion_files --write completions/
# (the same as `vutf completion fish`): do not edit.  Completing starts
# no process, except `vutf completion names` for usernames and key prefixes.
# Install: vutf completion fish > ~/.config/fish/completions/vutf.fish

function __vutf_takes_value --argument-names cmdpath option
    switch $option
        case --database-url --output -o --actor
            return 0
    end
    switch "$cmdpath $option"
        case 'plan --file' 'plan -f' 'plan --out'
            return 0
        case 'apply --file' 'apply -f' 'apply --secrets-dir'
            return 0
        case 'export-state --output-file'
            return 0
        case 'batch --file' 'batch -f'
            return 0
        case 'users create --email' 'users create --full-name' 'users create --password-file'
            return 0
        case 'users list --search' 'users list --sort' 'users list --limit' 'users list --cursor' 'users list --fields'
            return 0
        case 'users show --fields'
            return 0
        case 'users update --email' 'users update --full-name' 'users update --expected-version'
            return 0
        case 'users set-password --password-file' 'users set-password --expected-version'
            return 0
        case 'users check-password --password-file'
            return 0
        case 'users export --output-file'
            return 0
        case 'users import --input-format'
            return 0
        case 'users add-role --expires-in' 'users add-role --expires-at' 'users add-role --from-file'
            return 0
        case 'users remove-role --from-file'
            return 0
        case 'keys create --user' 'keys create -u' 'keys create --name' 'keys create -n' 'keys create --scope' 'keys create -s' 'keys create --expires-in' 'keys create --expires-at' 'keys create --description' 'keys create --secret-file'
            return 0
        case 'keys list --user' 'keys list -u' 'keys list --expiring-within' 'keys list --unused-for' 'keys list --limit' 'keys list --cursor' 'keys list --fields'
            return 0
        case 'keys show --fields'
            return 0
        case 'keys revoke --user' 'keys revoke -u'
            return 0
        case 'keys rotate --grace' 'keys rotate --expires-in' 'keys rotate --expires-at' 'keys rotate --secret-file'
            return 0
        case 'keys extend --expires-in' 'keys extend --expires-at'
            return 0
        case 'keys set-scopes --scope' 'keys set-scopes -s'
            return 0
        case 'keys prune-expired --older-than'
            return 0
        case 'keys verify --require-scope' 'keys verify --key-file'
            return 0
        case 'roles create --scope' 'roles create --description'
            return 0
        case 'roles update --scope' 'roles update --description' 'roles update --rename' 'roles update --expected-version'
            return 0
        case 'audit list --by-actor' 'audit list --user' 'audit list --action' 'audit list --resource-type' 'audit list --resource-id' 'audit list --status' 'audit list --since' 'audit list --until' 'audit list --since-seq' 'audit list --limit' 'audit list --cursor' 'audit list --fields'
            return 0
        case 'audit show --fields'
            return 0
        case 'audit follow --by-actor' 'audit follow --user' 'audit follow --action' 'audit follow --resource-type' 'audit follow --resource-id' 'audit follow --status' 'audit follow --lines' 'audit follow -n' 'audit follow --since' 'audit follow --since-seq' 'audit follow --interval' 'audit follow --max-events' 'audit follow --timeout'
            return 0
        case 'audit export --by-actor' 'audit export --user' 'audit export --action' 'audit export --resource-type' 'audit export --resource-id' 'audit export --status' 'audit export --since' 'audit export --until' 'audit export --since-seq' 'audit export --output-file'
            return 0
        case 'audit verify --since-seq' 'audit verify --anchor'
            return 0
        case 'audit stats --by' 'audit stats --since' 'audit stats --until'
            return 0
    end
    return 1
end

function __vutf_commands --argument-names cmdpath
    switch $cmdpath
        case ''
            printf '%s\n' doctor plan apply export-state batch db users keys roles audit completion
        case 'db'
            printf '%s\n' upgrade downgrade current history heads check status ping grant-runtime revoke-runtime
        case 'users'
            printf '%s\n' create list show update set-password check-password unlock activate deactivate verify delete restore export import add-role remove-role
        case 'keys'
            printf '%s\n' create list show revoke delete rotate extend set-scopes prune-expired verify
        case 'roles'
            printf '%s\n' create list show update delete restore members prune-expired
        case 'audit'
            printf '%s\n' list show follow export verify head stats
        case 'completion'
            printf '%s\n' bash zsh fish
    end
end

# Prints the command path and the number of arguments before the cursor.
function __vutf_state
    set -l cmdpath ''
    set -l nargs 0
    set -l expect 0
    set -l rest 0
    for word in (commandline -opc)[2..-1]
        if test $expect = 1
            set expect 0
        else if test $rest = 0; and test "$word" = --
            set rest 1
        else if test $rest = 0; and string match -q -- '-*' $word
            if not string match -q -- '*=*' $word; and __vutf_takes_value "$cmdpath" $word
                set expect 1
            end
        else if test $nargs = 0; and contains -- $word (__vutf_commands "$cmdpath")
            set cmdpath (string join ' ' -- $cmdpath $word | string trim)
        else
            set nargs (math $nargs + 1)
        end
    end
    printf '%s\n' "$cmdpath" $nargs
end

# True at command PATH (and at argument POSITION; '*': any).
function __vutf_at --argument-names want position
    set -l state (__vutf_state)
    test "$state[1]" = "$want"; or return 1
    test -z "$position"; or test "$position" = '*'; or test "$state[2]" = "$position"
end

# The only completion that runs vutf.
function __vutf_names --argument-names kind
    set -l prefix (commandline -ct | string replace -r -- '^-[^=]*=' '')
    command vutf completion names $kind "$prefix" 2>/dev/null
end

# No file names unless an option or argument takes a file.
complete -c vutf -f

# Global options: after any subcommand too.
complete -c vutf -l database-url -x -d 'Database URL (env VUTF_DATABASE_URL). Default: SQLite file in the data dir.'
complete -c vutf -l output -s o -x -a 'table wide json jsonl csv yaml' -d 'Output format: [table|wide|json|jsonl|csv|yaml] (env VUTF_OUTPUT).'
complete -c vutf -l json -d 'Same as -o json.'
complete -c vutf -l actor -x -d 'Who is acting, for the audit log (env VUTF_ACTOR); never a filter.'
complete -c vutf -l yes -s y -d 'Assume yes to confirmations.'
complete -c vutf -l quiet -s q -d 'Only data and errors.'
complete -c vutf -l no-color -d 'No colours (NO_COLOR is honoured too).'
complete -c vutf -l debug -d 'Show tracebacks.'
complete -c vutf -l version -d 'Print the versions of vutf, Python, SQLAlchemy and the schema head; exit.'
complete -c vutf -l help -s h -d 'Show this message and exit.'

# vutf
complete -c vutf -n '__vutf_at "" 0' -a doctor -d 'Show what vutf would act on and whether it is healthy.'
complete -c vutf -n '__vutf_at "" 0' -a plan -d 'Show what applying an identity file would change.'
complete -c vutf -n '__vutf_at "" 0' -a apply -d 'Apply an identity file (or a reviewed plan), all or nothing.'
complete -c vutf -n '__vutf_at "" 0' -a export-state -d 'Write the users and active API keys as an identity file.'
complete -c vutf -n '__vutf_at "" 0' -a batch -d 'Run many commands in one process, one JSON line each.'
complete -c vutf -n '__vutf_at "" 0' -a db -d 'Manage the schema: migrations, status, connectivity.'
complete -c vutf -n '__vutf_at "" 0' -a users -d 'Manage users: create, list, change, delete, import, export.'
complete -c vutf -n '__vutf_at "" 0' -a keys -d 'Manage API keys: issue, list, revoke, rotate, verify.'
complete -c vutf -n '__vutf_at "" 0' -a roles -d 'Manage roles: named sets of API-key scopes that users hold.'
complete -c vutf -n '__vutf_at "" 0' -a audit -d 'Read and check the audit log: list, follow, export, verify.'
complete -c vutf -n '__vutf_at "" 0' -a completion -d 'Print a shell completion script (bash, zsh, fish).'

# vutf doctor

# vutf plan
complete -c vutf -n '__vutf_at "plan"' -l file -s f -r -F -d 'The identity file (YAML or JSON, apiVersion vutf/v1); - for stdin.'
complete -c vutf -n '__vutf_at "plan"' -l prune -d 'Also deactivate users and revoke API keys the file does not mention (never deletes).'
complete -c vutf -n '__vutf_at "plan"' -l out -x -d 'Also write the plan to PLAN (mode 0600), for `vutf apply PLAN`.'
complete -c vutf -n '__vutf_at "plan"' -l overwrite -d 'Replace an existing --out PLAN.'

# vutf apply
complete -c vutf -n '__vutf_at "apply"' -l file -s f -r -F -d 'The identity file (YAML or JSON, apiVersion vutf/v1); - for stdin.'
complete -c vutf -n '__vutf_at "apply"' -l prune -d 'Also deactivate users and revoke API keys the file does not mention (never deletes).'
complete -c vutf -n '__vutf_at "apply"' -l secrets-dir -x -d 'Where new users\' passwords and new API keys go: a private folder (created 0700), one 0600 file each. Required when keys are created.'
complete -c vutf -n '__vutf_at "apply"' -l no-passwords -d 'Give new users no usable password even with --secrets-dir (only new API keys are written there): set one later with `vutf users set-password`. Saves hashing a generated password per new user.'

# vutf export-state
complete -c vutf -n '__vutf_at "export-state"' -l output-file -r -F -d 'Write to FILE (a new file gets mode 0600) instead of stdout.'
complete -c vutf -n '__vutf_at "export-state"' -l force -d 'Overwrite an existing --output-file.'

# vutf batch
complete -c vutf -n '__vutf_at "batch"' -l file -s f -r -F -d 'The commands, one JSON object per line; - (or no --file) for stdin.'
complete -c vutf -n '__vutf_at "batch"' -l keep-going -d 'Run every line even after one fails (default: stop after the first failure).'

# vutf db
complete -c vutf -n '__vutf_at "db" 0' -a upgrade -d 'Upgrade the schema to REVISION (default: head).'
complete -c vutf -n '__vutf_at "db" 0' -a downgrade -d 'Downgrade the schema to REVISION (asks first).'
complete -c vutf -n '__vutf_at "db" 0' -a current -d 'Show the database\'s schema revision and the head revision.'
complete -c vutf -n '__vutf_at "db" 0' -a history -d 'List the migration revisions, newest first.'
complete -c vutf -n '__vutf_at "db" 0' -a heads -d 'List the head revision(s) of the migration scripts.'
complete -c vutf -n '__vutf_at "db" 0' -a check -d 'Verify that the schema is at head and matches the models.'
complete -c vutf -n '__vutf_at "db" 0' -a status -d 'Show server, revision, row counts, pool and timeouts.'
complete -c vutf -n '__vutf_at "db" 0' -a ping -d 'Make one round trip to the database and report its latency.'
complete -c vutf -n '__vutf_at "db" 0' -a grant-runtime -d 'Give ROLE exactly what vutf needs at run time (PostgreSQL).'
complete -c vutf -n '__vutf_at "db" 0' -a revoke-runtime -d 'Take back what grant-runtime gave ROLE (PostgreSQL).'

# vutf db upgrade
complete -c vutf -n '__vutf_at "db upgrade"' -l sql -d 'Print the SQL instead of running it (offline: no database connection).'

# vutf db downgrade
complete -c vutf -n '__vutf_at "db downgrade"' -l sql -d 'Print the SQL instead of running it (offline: no database connection).'

# vutf db current

# vutf db history

# vutf db heads

# vutf db check

# vutf db status

# vutf db ping

# vutf db grant-runtime
complete -c vutf -n '__vutf_at "db grant-runtime"' -l create -d 'Create ROLE (NOLOGIN) if it does not exist.'
complete -c vutf -n '__vutf_at "db grant-runtime"' -l no-hard-delete -d 'Leave out DELETE on users and api_keys (then `users delete --hard` is refused).'
complete -c vutf -n '__vutf_at "db grant-runtime"' -l sql -d 'Print the GRANT script instead of running it (offline: no connection).'

# vutf db revoke-runtime
complete -c vutf -n '__vutf_at "db revoke-runtime"' -l sql -d 'Print the REVOKE script instead of running it (offline: no connection).'

# vutf users
complete -c vutf -n '__vutf_at "users" 0' -a create -d 'Create a user.'
complete -c vutf -n '__vutf_at "users" 0' -a list -d 'List users: all for json, jsonl and csv; a page in a table.'
complete -c vutf -n '__vutf_at "users" 0' -a show -d 'Show one user (deleted users too, marked as such).'
complete -c vutf -n '__vutf_at "users" 0' -a update -d 'Change a user\'s email, full name or superuser flag.'
complete -c vutf -n '__vutf_at "users" 0' -a set-password -d 'Set a user\'s password (a minimum length is the only rule).'
complete -c vutf -n '__vutf_at "users" 0' -a check-password -d 'Check a user\'s password: exit 0 if it matches, 5 if not.'
complete -c vutf -n '__vutf_at "users" 0' -a unlock -d 'End a user\'s lockout and clear their failed-attempt count.'
complete -c vutf -n '__vutf_at "users" 0' -a activate -d 'Activate a user (an active user is left as it is).'
complete -c vutf -n '__vutf_at "users" 0' -a deactivate -d 'Deactivate a user: no logins; their API keys stop working.'
complete -c vutf -n '__vutf_at "users" 0' -a verify -d 'Mark a user\'s email address verified.'
complete -c vutf -n '__vutf_at "users" 0' -a delete -d 'Delete a user: soft (restorable) or --hard.'
complete -c vutf -n '__vutf_at "users" 0' -a restore -d 'Restore a soft-deleted user (revoked keys stay revoked).'
complete -c vutf -n '__vutf_at "users" 0' -a export -d 'Export users as json (default), jsonl or csv, streamed.'
complete -c vutf -n '__vutf_at "users" 0' -a import -d 'Import users from json, jsonl or csv (all or nothing).'
complete -c vutf -n '__vutf_at "users" 0' -a add-role -d 'Give a role to one or more users (all or nothing).'
complete -c vutf -n '__vutf_at "users" 0' -a remove-role -d 'Take a role from one or more users (all or nothing).'

# vutf users create
complete -c vutf -n '__vutf_at "users create"' -l email -x -d 'Email address (required; asked for on a terminal).'
complete -c vutf -n '__vutf_at "users create"' -l full-name -x -d 'Display name.'
complete -c vutf -n '__vutf_at "users create"' -l superuser -d 'Make a superuser.'
complete -c vutf -n '__vutf_at "users create"' -l verified -d 'Mark the email address verified.'
complete -c vutf -n '__vutf_at "users create"' -l password-stdin -d 'Read the password from stdin (all of it; one trailing newline is removed).'
complete -c vutf -n '__vutf_at "users create"' -l password-file -r -F -d 'Read the password from FILE (one trailing newline is removed).'
complete -c vutf -n '__vutf_at "users create"' -l generate-password -d 'Generate a strong random password and print it once.'
complete -c vutf -n '__vutf_at "users create"' -l if-not-exists -d 'If USERNAME exists, report that user unchanged and exit 0.'

# vutf users list
complete -c vutf -n '__vutf_at "users list"' -l active -l inactive -d 'Only active, or only inactive, users.'
complete -c vutf -n '__vutf_at "users list"' -l superuser -l no-superuser -d 'Only superusers, or only the others.'
complete -c vutf -n '__vutf_at "users list"' -l search -x -d 'Case-insensitive substring of username, email or full name (% and _ literal).'
complete -c vutf -n '__vutf_at "users list"' -l deleted -d 'Only deleted users.'
complete -c vutf -n '__vutf_at "users list"' -l include-deleted -d 'Deleted and live users together.'
complete -c vutf -n '__vutf_at "users list"' -l sort -x -a 'username email created_at -username -email -created_at' -d 'Sort by [username|email|created_at|-username|-email|-created_at] (- descends).'
complete -c vutf -n '__vutf_at "users list"' -l limit -x -d 'At most N rows (1-100000), then the next cursor on stderr. Default: every row for json, jsonl and csv; a page of 100 for a table.'
complete -c vutf -n '__vutf_at "users list"' -l cursor -x -d 'Continue after the page that printed \'next cursor: CURSOR\' (same filters, sort).'
complete -c vutf -n '__vutf_at "users list"' -l all -d 'Every row, in a table too (not with --limit).'
complete -c vutf -n '__vutf_at "users list"' -l fields -x -d 'Only these fields, in this order, comma-separated: the keys of this command\'s JSON output (an unknown one is an error listing them). Every format.'
complete -c vutf -n '__vutf_at "users list"' -l no-headers -d 'No header line (table, wide and csv).'
complete -c vutf -n '__vutf_at "users list"' -l no-pager -d 'Do not page a long table on a terminal ($VUTF_PAGER, $PAGER, or less -FRX).'

# vutf users show
complete -c vutf -n '__vutf_at "users show"' -l with-keys -d 'Also list the user\'s API keys.'
complete -c vutf -n '__vutf_at "users show"' -l permissions -d 'Show the user\'s effective scopes now and the roles granting each instead.'
complete -c vutf -n '__vutf_at "users show"' -l fields -x -d 'Only these fields, in this order, comma-separated: the keys of this command\'s JSON output (an unknown one is an error listing them). Every format.'
complete -c vutf -n '__vutf_at "users show"' -l no-headers -d 'No header line (table, wide and csv).'
complete -c vutf -n '__vutf_at "users show"' -l no-pager -d 'Do not page a long table on a terminal ($VUTF_PAGER, $PAGER, or less -FRX).'
complete -c vutf -n '__vutf_at "users show" "0"' -x -a '(__vutf_names users)'

# vutf users update
complete -c vutf -n '__vutf_at "users update"' -l email -x -d 'New email address.'
complete -c vutf -n '__vutf_at "users update"' -l full-name -x -d 'New display name ("" clears it).'
complete -c vutf -n '__vutf_at "users update"' -l superuser -l no-superuser -d 'Grant or take away superuser.'
complete -c vutf -n '__vutf_at "users update"' -l expected-version -x -d 'Only change the user if it is still at version N (else exit 4).'
complete -c vutf -n '__vutf_at "users update" "0"' -x -a '(__vutf_names users)'

# vutf users set-password
complete -c vutf -n '__vutf_at "users set-password"' -l password-stdin -d 'Read the password from stdin (all of it; one trailing newline is removed).'
complete -c vutf -n '__vutf_at "users set-password"' -l password-file -r -F -d 'Read the password from FILE (one trailing newline is removed).'
complete -c vutf -n '__vutf_at "users set-password"' -l expected-version -x -d 'Only change the user if it is still at version N (else exit 4).'
complete -c vutf -n '__vutf_at "users set-password" "0"' -x -a '(__vutf_names users)'

# vutf users check-password
complete -c vutf -n '__vutf_at "users check-password"' -l password-stdin -d 'Read the password from stdin (all of it; one trailing newline is removed).'
complete -c vutf -n '__vutf_at "users check-password"' -l password-file -r -F -d 'Read the password from FILE (one trailing newline is removed).'
complete -c vutf -n '__vutf_at "users check-password" "0"' -x -a '(__vutf_names users)'

# vutf users unlock
complete -c vutf -n '__vutf_at "users unlock" "0"' -x -a '(__vutf_names users)'

# vutf users activate
complete -c vutf -n '__vutf_at "users activate" "0"' -x -a '(__vutf_names users)'

# vutf users deactivate
complete -c vutf -n '__vutf_at "users deactivate"' -l if-exists -d 'If USER does not exist, say so on stderr and exit 0 (nothing is written).'
complete -c vutf -n '__vutf_at "users deactivate" "0"' -x -a '(__vutf_names users)'

# vutf users verify
complete -c vutf -n '__vutf_at "users verify" "0"' -x -a '(__vutf_names users)'

# vutf users delete
complete -c vutf -n '__vutf_at "users delete"' -l hard -d 'Remove the row and the user\'s API keys for good.'
complete -c vutf -n '__vutf_at "users delete"' -l if-exists -d 'If USER does not exist, say so on stderr and exit 0 (nothing is written).'
complete -c vutf -n '__vutf_at "users delete" "0"' -x -a '(__vutf_names users)'

# vutf users restore
complete -c vutf -n '__vutf_at "users restore"' -l if-exists -d 'If USER does not exist, say so on stderr and exit 0 (nothing is written).'
complete -c vutf -n '__vutf_at "users restore" "0"' -x -a '(__vutf_names users)'

# vutf users export
complete -c vutf -n '__vutf_at "users export"' -l include-hashes -d 'Include password hashes (treat as a secret).'
complete -c vutf -n '__vutf_at "users export"' -l deleted -d 'Only deleted users.'
complete -c vutf -n '__vutf_at "users export"' -l include-deleted -d 'Deleted and live users together.'
complete -c vutf -n '__vutf_at "users export"' -l output-file -r -F -d 'Write to FILE (a new file gets mode 0600) instead of stdout.'
complete -c vutf -n '__vutf_at "users export"' -l force -d 'Overwrite an existing --output-file.'

# vutf users import
complete -c vutf -n '__vutf_at "users import"' -l input-format -x -a 'json jsonl csv' -d 'The format of FILE: [json|jsonl|csv] (default: from its name and content).'
complete -c vutf -n '__vutf_at "users import"' -l dry-run -d 'Check everything, write nothing.'
complete -c vutf -n '__vutf_at "users import"' -l skip-existing -d 'Leave users whose username exists alone.'
complete -c vutf -n '__vutf_at "users import"' -l skip-invalid -d 'Import the good rows and only report the bad ones.'
complete -c vutf -n '__vutf_at "users import"' -l allow-weak-hashes -d 'Accept password hashes weaker than the configured argon2 profile (rehashed at each user\'s next login).'
complete -c vutf -n '__vutf_at "users import" "0"' -F

# vutf users add-role
complete -c vutf -n '__vutf_at "users add-role"' -l expires-in -x -d 'End after DURATION (7d, 12h).'
complete -c vutf -n '__vutf_at "users add-role"' -l expires-at -x -d 'End at TIME (ISO 8601; no zone = UTC).'
complete -c vutf -n '__vutf_at "users add-role"' -l from-file -x -d 'Read the users from FILE, one a line (# comments and blank lines skipped).'
complete -c vutf -n '__vutf_at "users add-role"' -l dry-run -d 'Check everything and show what would happen; write nothing.'
complete -c vutf -n '__vutf_at "users add-role"' -l if-not-exists -d 'Leave users who already hold ROLE as they are.'

# vutf users remove-role
complete -c vutf -n '__vutf_at "users remove-role"' -l from-file -x -d 'Read the users from FILE, one a line (# comments and blank lines skipped).'
complete -c vutf -n '__vutf_at "users remove-role"' -l dry-run -d 'Check everything and show what would happen; write nothing.'
complete -c vutf -n '__vutf_at "users remove-role"' -l if-exists -d 'Skip users who do not hold ROLE (exit 0).'

# vutf keys
complete -c vutf -n '__vutf_at "keys" 0' -a create -d 'Issue an API key and print it once.'
complete -c vutf -n '__vutf_at "keys" 0' -a list -d 'List API keys (default: the active ones).'
complete -c vutf -n '__vutf_at "keys" 0' -a show -d 'Show one API key by id or prefix.'
complete -c vutf -n '__vutf_at "keys" 0' -a revoke -d 'Revoke API keys, all or nothing.'
complete -c vutf -n '__vutf_at "keys" 0' -a delete -d 'Delete API keys, all or nothing (working ones are revoked).'
complete -c vutf -n '__vutf_at "keys" 0' -a rotate -d 'Replace a key by a new one; print the new key once.'
complete -c vutf -n '__vutf_at "keys" 0' -a extend -d 'Change a key\'s expiry.'
complete -c vutf -n '__vutf_at "keys" 0' -a set-scopes -d 'Replace a key\'s scopes (with scopes its owner holds).'
complete -c vutf -n '__vutf_at "keys" 0' -a prune-expired -d 'Soft-delete keys that ended long ago.'
complete -c vutf -n '__vutf_at "keys" 0' -a verify -d 'Check an API key read from stdin (exit 0 valid, 5 refused).'

# vutf keys create
complete -c vutf -n '__vutf_at "keys create"' -l user -s u -x -a '(__vutf_names users)' -d 'Owner: username, email or id (required; asked for on a terminal).'
complete -c vutf -n '__vutf_at "keys create"' -l name -s n -x -d 'Name, unique among the owner\'s keys (required; asked for on a terminal).'
complete -c vutf -n '__vutf_at "keys create"' -l scope -s s -x -d 'Scope to grant; repeat it or separate with commas (read,write,targets:*).'
complete -c vutf -n '__vutf_at "keys create"' -l expires-in -x -d 'Expire after this long from now (90d, 12h, 2w).'
complete -c vutf -n '__vutf_at "keys create"' -l expires-at -x -d 'Expire at TIME: ISO 8601 (no zone: VUTF_TIMEZONE if set, else UTC) or \'tomorrow 09:00\'.'
complete -c vutf -n '__vutf_at "keys create"' -l no-expiry -d 'Never expire.'
complete -c vutf -n '__vutf_at "keys create"' -l description -x -d 'Free text.'
complete -c vutf -n '__vutf_at "keys create"' -l secret-file -r -F -d 'Write the key to this NEW file (mode 0600) instead of stdout.'
complete -c vutf -n '__vutf_at "keys create"' -l if-not-exists -d 'If USER has an active key NAME, show it (no secret) and exit 0.'
complete -c vutf -n '__vutf_at "keys create"' -l force -d 'Allow scopes USER does not hold (the actor must be a superuser; audited).'

# vutf keys list
complete -c vutf -n '__vutf_at "keys list"' -l user -s u -x -a '(__vutf_names users)' -d 'Only keys of this user.'
complete -c vutf -n '__vutf_at "keys list"' -l active -d 'Usable keys (the default).'
complete -c vutf -n '__vutf_at "keys list"' -l expired -d 'Expired keys.'
complete -c vutf -n '__vutf_at "keys list"' -l revoked -d 'Revoked keys.'
complete -c vutf -n '__vutf_at "keys list"' -l any-state -d 'Keys in every state, pruned (deleted) ones too.'
complete -c vutf -n '__vutf_at "keys list"' -l expiring-within -x -d 'Only keys expiring within this duration (7d).'
complete -c vutf -n '__vutf_at "keys list"' -l unused-for -x -d 'Only keys not used for this long (90d).'
complete -c vutf -n '__vutf_at "keys list"' -l limit -x -d 'At most N rows (1-100000), then the next cursor on stderr. Default: every row for json, jsonl and csv; a page of 100 for a table.'
complete -c vutf -n '__vutf_at "keys list"' -l cursor -x -d 'Continue after the page that printed \'next cursor: CURSOR\' (same filters, sort).'
complete -c vutf -n '__vutf_at "keys list"' -l all -d 'Every row, in a table too (not with --limit).'
complete -c vutf -n '__vutf_at "keys list"' -l fields -x -d 'Only these fields, in this order, comma-separated: the keys of this command\'s JSON output (an unknown one is an error listing them). Every format.'
complete -c vutf -n '__vutf_at "keys list"' -l no-headers -d 'No header line (table, wide and csv).'
complete -c vutf -n '__vutf_at "keys list"' -l no-pager -d 'Do not page a long table on a terminal ($VUTF_PAGER, $PAGER, or less -FRX).'

# vutf keys show
complete -c vutf -n '__vutf_at "keys show"' -l fields -x -d 'Only these fields, in this order, comma-separated: the keys of this command\'s JSON output (an unknown one is an error listing them). Every format.'
complete -c vutf -n '__vutf_at "keys show"' -l no-headers -d 'No header line (table, wide and csv).'
complete -c vutf -n '__vutf_at "keys show"' -l no-pager -d 'Do not page a long table on a terminal ($VUTF_PAGER, $PAGER, or less -FRX).'
complete -c vutf -n '__vutf_at "keys show" "0"' -x -a '(__vutf_names keys)'

# vutf keys revoke
complete -c vutf -n '__vutf_at "keys revoke"' -l user -s u -x -a '(__vutf_names users)' -d 'With --all: every key of this user.'
complete -c vutf -n '__vutf_at "keys revoke"' -l all -d 'Every key of --user.'
complete -c vutf -n '__vutf_at "keys revoke"' -l if-exists -d 'Skip a KEY (or --user) that does not exist, saying so on stderr (exit 0).'
complete -c vutf -n '__vutf_at "keys revoke" "*"' -x -a '(__vutf_names keys)'

# vutf keys delete
complete -c vutf -n '__vutf_at "keys delete"' -l if-exists -d 'Skip a KEY (or --user) that does not exist, saying so on stderr (exit 0).'
complete -c vutf -n '__vutf_at "keys delete" "*"' -x -a '(__vutf_names keys)'

# vutf keys rotate
complete -c vutf -n '__vutf_at "keys rotate"' -l grace -x -d 'Keep the old key working this long (24h); default: none.'
complete -c vutf -n '__vutf_at "keys rotate"' -l expires-in -x -d 'Expire after this long from now (90d, 12h, 2w).'
complete -c vutf -n '__vutf_at "keys rotate"' -l expires-at -x -d 'Expire at TIME: ISO 8601 (no zone: VUTF_TIMEZONE if set, else UTC) or \'tomorrow 09:00\'.'
complete -c vutf -n '__vutf_at "keys rotate"' -l no-expiry -d 'Never expire.'
complete -c vutf -n '__vutf_at "keys rotate"' -l secret-file -r -F -d 'Write the key to this NEW file (mode 0600) instead of stdout.'
complete -c vutf -n '__vutf_at "keys rotate" "0"' -x -a '(__vutf_names keys)'

# vutf keys extend
complete -c vutf -n '__vutf_at "keys extend"' -l expires-in -x -d 'Expire after this long from now (90d, 12h, 2w).'
complete -c vutf -n '__vutf_at "keys extend"' -l expires-at -x -d 'Expire at TIME: ISO 8601 (no zone: VUTF_TIMEZONE if set, else UTC) or \'tomorrow 09:00\'.'
complete -c vutf -n '__vutf_at "keys extend"' -l no-expiry -d 'Never expire.'
complete -c vutf -n '__vutf_at "keys extend" "0"' -x -a '(__vutf_names keys)'

# vutf keys set-scopes
complete -c vutf -n '__vutf_at "keys set-scopes"' -l scope -s s -x -d 'Scope to grant; repeat it or separate with commas (read,write,targets:*).'
complete -c vutf -n '__vutf_at "keys set-scopes"' -l force -d 'Allow scopes the owner does not hold (the actor must be a superuser; audited).'
complete -c vutf -n '__vutf_at "keys set-scopes" "0"' -x -a '(__vutf_names keys)'

# vutf keys prune-expired
complete -c vutf -n '__vutf_at "keys prune-expired"' -l older-than -x -d 'Only keys expired or revoked at least this long ago.'

# vutf keys verify
complete -c vutf -n '__vutf_at "keys verify"' -l require-scope -x -d 'Also require this scope (exit 5 if missing).'
complete -c vutf -n '__vutf_at "keys verify"' -l record-usage -d 'Count this as a use (last used, usage count).'
complete -c vutf -n '__vutf_at "keys verify"' -l no-record -d 'Write nothing, not even the audit row of this attempt.'
complete -c vutf -n '__vutf_at "keys verify"' -l key-file -r -F -d 'Read the key from this file instead of stdin.'

# vutf roles
complete -c vutf -n '__vutf_at "roles" 0' -a create -d 'Create a role granting one or more scopes.'
complete -c vutf -n '__vutf_at "roles" 0' -a list -d 'List roles, with how many users hold each now.'
complete -c vutf -n '__vutf_at "roles" 0' -a show -d 'Show one role (a deleted one too, marked as such).'
complete -c vutf -n '__vutf_at "roles" 0' -a update -d 'Change a role (--scope replaces its scopes).'
complete -c vutf -n '__vutf_at "roles" 0' -a delete -d 'Delete a role (restorable) and end its assignments.'
complete -c vutf -n '__vutf_at "roles" 0' -a restore -d 'Restore a deleted role (its ended assignments stay ended).'
complete -c vutf -n '__vutf_at "roles" 0' -a members -d 'List the users who hold a role now.'
complete -c vutf -n '__vutf_at "roles" 0' -a prune-expired -d 'Remove assignments whose expiry has passed.'

# vutf roles create
complete -c vutf -n '__vutf_at "roles create"' -l scope -x -d 'A scope the role grants (repeat, or comma-separate); the API keys\' scopes.'
complete -c vutf -n '__vutf_at "roles create"' -l description -x -d 'What the role is for.'
complete -c vutf -n '__vutf_at "roles create"' -l if-not-exists -d 'If NAME exists, report that role unchanged; exit 0.'

# vutf roles list
complete -c vutf -n '__vutf_at "roles list"' -l include-deleted -d 'Deleted and live roles together.'

# vutf roles show
complete -c vutf -n '__vutf_at "roles show" "0"' -x -a '(__vutf_names roles)'

# vutf roles update
complete -c vutf -n '__vutf_at "roles update"' -l scope -x -d 'A scope the role grants (repeat, or comma-separate); the API keys\' scopes.'
complete -c vutf -n '__vutf_at "roles update"' -l description -x -d 'New description ("" clears it).'
complete -c vutf -n '__vutf_at "roles update"' -l rename -x -d 'New name.'
complete -c vutf -n '__vutf_at "roles update"' -l expected-version -x -d 'Only change the role if it is still at version N (else exit 4).'
complete -c vutf -n '__vutf_at "roles update" "0"' -x -a '(__vutf_names roles)'

# vutf roles delete
complete -c vutf -n '__vutf_at "roles delete"' -l if-exists -d 'If ROLE does not exist, say so on stderr and exit 0 (nothing is written).'
complete -c vutf -n '__vutf_at "roles delete" "0"' -x -a '(__vutf_names roles)'

# vutf roles restore
complete -c vutf -n '__vutf_at "roles restore" "0"' -x -a '(__vutf_names roles)'

# vutf roles members
complete -c vutf -n '__vutf_at "roles members"' -l include-expired -d 'Also assignments past their expiry (not pruned).'
complete -c vutf -n '__vutf_at "roles members" "0"' -x -a '(__vutf_names roles)'

# vutf roles prune-expired
complete -c vutf -n '__vutf_at "roles prune-expired"' -l dry-run -d 'Show what would be pruned; write nothing.'

# vutf audit
complete -c vutf -n '__vutf_at "audit" 0' -a list -d 'List audit entries, newest first: all for json, jsonl, csv.'
complete -c vutf -n '__vutf_at "audit" 0' -a show -d 'Show one audit entry in full, with its changes and metadata.'
complete -c vutf -n '__vutf_at "audit" 0' -a follow -d 'Print audit entries as they are appended, like tail -f.'
complete -c vutf -n '__vutf_at "audit" 0' -a export -d 'Export audit entries, oldest first, streamed in constant memory.'
complete -c vutf -n '__vutf_at "audit" 0' -a verify -d 'Recompute the audit hash chain and report the first problem.'
complete -c vutf -n '__vutf_at "audit" 0' -a head -d 'Print the head of the chain as SEQ:HASH, to record somewhere else.'
complete -c vutf -n '__vutf_at "audit" 0' -a stats -d 'Count audit entries by action, actor, type, status or day.'

# vutf audit list
complete -c vutf -n '__vutf_at "audit list"' -l by-actor -x -d 'Only entries by this actor (exact; --actor is who is acting, never a filter).'
complete -c vutf -n '__vutf_at "audit list"' -l user -x -a '(__vutf_names users)' -d 'Only entries about this user: username, email or id.'
complete -c vutf -n '__vutf_at "audit list"' -l action -x -d 'Only this action (user.create) or glob (user.*, *.create).'
complete -c vutf -n '__vutf_at "audit list"' -l resource-type -x -d 'Only this resource type (user, ...).'
complete -c vutf -n '__vutf_at "audit list"' -l resource-id -x -d 'Only this resource id.'
complete -c vutf -n '__vutf_at "audit list"' -l status -x -a 'success failure error' -d 'Only this status: [success|failure|error].'
complete -c vutf -n '__vutf_at "audit list"' -l since -x -d 'From TIME on: 2h, \'1 hour ago\', 09:00 (today), yesterday, 2026-05-01, ISO 8601 (no zone: VUTF_TIMEZONE if set, else UTC).'
complete -c vutf -n '__vutf_at "audit list"' -l until -x -d 'Before TIME (same forms as --since).'
complete -c vutf -n '__vutf_at "audit list"' -l since-seq -x -d 'Only entries from seq SEQ on (vutf audit head names the last).'
complete -c vutf -n '__vutf_at "audit list"' -l reverse -d 'Oldest first.'
complete -c vutf -n '__vutf_at "audit list"' -l limit -x -d 'At most N rows (1-100000), then the next cursor on stderr. Default: every row for json, jsonl and csv; a page of 100 for a table.'
complete -c vutf -n '__vutf_at "audit list"' -l cursor -x -d 'Continue after the page that printed \'next cursor: CURSOR\' (same filters, sort).'
complete -c vutf -n '__vutf_at "audit list"' -l all -d 'Every row, in a table too (not with --limit).'
complete -c vutf -n '__vutf_at "audit list"' -l fields -x -d 'Only these fields, in this order, comma-separated: the keys of this command\'s JSON output (an unknown one is an error listing them). Every format.'
complete -c vutf -n '__vutf_at "audit list"' -l no-headers -d 'No header line (table, wide and csv).'
complete -c vutf -n '__vutf_at "audit list"' -l no-pager -d 'Do not page a long table on a terminal ($VUTF_PAGER, $PAGER, or less -FRX).'

# vutf audit show
complete -c vutf -n '__vutf_at "audit show"' -l fields -x -d 'Only these fields, in this order, comma-separated: the keys of this command\'s JSON output (an unknown one is an error listing them). Every format.'
complete -c vutf -n '__vutf_at "audit show"' -l no-headers -d 'No header line (table, wide and csv).'
complete -c vutf -n '__vutf_at "audit show"' -l no-pager -d 'Do not page a long table on a terminal ($VUTF_PAGER, $PAGER, or less -FRX).'

# vutf audit follow
complete -c vutf -n '__vutf_at "audit follow"' -l by-actor -x -d 'Only entries by this actor (exact; --actor is who is acting, never a filter).'
complete -c vutf -n '__vutf_at "audit follow"' -l user -x -a '(__vutf_names users)' -d 'Only entries about this user: username, email or id.'
complete -c vutf -n '__vutf_at "audit follow"' -l action -x -d 'Only this action (user.create) or glob (user.*, *.create).'
complete -c vutf -n '__vutf_at "audit follow"' -l resource-type -x -d 'Only this resource type (user, ...).'
complete -c vutf -n '__vutf_at "audit follow"' -l resource-id -x -d 'Only this resource id.'
complete -c vutf -n '__vutf_at "audit follow"' -l status -x -a 'success failure error' -d 'Only this status: [success|failure|error].'
complete -c vutf -n '__vutf_at "audit follow"' -l lines -s n -x -d 'Show the last N entries first (default 10; 0: none).'
complete -c vutf -n '__vutf_at "audit follow"' -l since -x -d 'From TIME on: 2h, \'1 hour ago\', 09:00 (today), yesterday, 2026-05-01, ISO 8601 (no zone: VUTF_TIMEZONE if set, else UTC).'
complete -c vutf -n '__vutf_at "audit follow"' -l since-seq -x -d 'Replay from SEQ first, then follow.'
complete -c vutf -n '__vutf_at "audit follow"' -l interval -x -d 'Pause between two polls.'
complete -c vutf -n '__vutf_at "audit follow"' -l max-events -x -d 'Stop after N entries.'
complete -c vutf -n '__vutf_at "audit follow"' -l timeout -x -d 'Stop after SECONDS.'

# vutf audit export
complete -c vutf -n '__vutf_at "audit export"' -l by-actor -x -d 'Only entries by this actor (exact; --actor is who is acting, never a filter).'
complete -c vutf -n '__vutf_at "audit export"' -l user -x -a '(__vutf_names users)' -d 'Only entries about this user: username, email or id.'
complete -c vutf -n '__vutf_at "audit export"' -l action -x -d 'Only this action (user.create) or glob (user.*, *.create).'
complete -c vutf -n '__vutf_at "audit export"' -l resource-type -x -d 'Only this resource type (user, ...).'
complete -c vutf -n '__vutf_at "audit export"' -l resource-id -x -d 'Only this resource id.'
complete -c vutf -n '__vutf_at "audit export"' -l status -x -a 'success failure error' -d 'Only this status: [success|failure|error].'
complete -c vutf -n '__vutf_at "audit export"' -l since -x -d 'From TIME on: 2h, \'1 hour ago\', 09:00 (today), yesterday, 2026-05-01, ISO 8601 (no zone: VUTF_TIMEZONE if set, else UTC).'
complete -c vutf -n '__vutf_at "audit export"' -l until -x -d 'Before TIME (same forms as --since).'
complete -c vutf -n '__vutf_at "audit export"' -l since-seq -x -d 'Only entries from seq SEQ on (vutf audit head names the last).'
complete -c vutf -n '__vutf_at "audit export"' -l output-file -r -F -d 'Write to FILE (a new file gets mode 0600) instead of stdout.'
complete -c vutf -n '__vutf_at "audit export"' -l force -d 'Overwrite an existing --output-file.'

# vutf audit verify
complete -c vutf -n '__vutf_at "audit verify"' -l since-seq -x -d 'Start at SEQ (linked to the row before).'
complete -c vutf -n '__vutf_at "audit verify"' -l anchor -x -d 'A head recorded earlier (vutf audit head): it must still be in the chain.'

# vutf audit head

# vutf audit stats
complete -c vutf -n '__vutf_at "audit stats"' -l by -x -a 'action actor resource-type status day' -d 'Group by [action|actor|resource-type|status|day] (day: in UTC).'
complete -c vutf -n '__vutf_at "audit stats"' -l since -x -d 'From TIME on: 2h, \'1 hour ago\', 09:00 (today), yesterday, 2026-05-01, ISO 8601 (no zone: VUTF_TIMEZONE if set, else UTC).'
complete -c vutf -n '__vutf_at "audit stats"' -l until -x -d 'Before TIME (same forms as --since).'

# vutf completion
complete -c vutf -n '__vutf_at "completion" 0' -a bash -d 'Print the bash completion script.'
complete -c vutf -n '__vutf_at "completion" 0' -a zsh -d 'Print the zsh completion script.'
complete -c vutf -n '__vutf_at "completion" 0' -a fish -d 'Print the fish completion script.'

# vutf completion bash

# vutf completion zsh

# vutf completion fish
