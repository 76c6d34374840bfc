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
        case 'users create --email' 'users create --full-name' 'users create --password-file'
            return 0
        case 'users list --search' 'users list --sort' 'users list --limit' 'users list --cursor'
            return 0
        case 'users update --email' 'users update --full-name' 'users update --expected-version'
            return 0
        case 'users set-password --password-file' 'users set-password --expected-version'
            return 0
        case 'users check-password --password-file'
            return 0
        case 'users import --format'
            return 0
        case 'keys create --user' 'keys create -u' 'keys create --name' 'keys create -n' 'keys create --scope' 'keys create -s' 'keys create --expires-in' 'keys create --expires-at' 'keys create --description' 'keys create --secret-file'
            return 0
        case 'keys list --user' 'keys list -u' 'keys list --expiring-within' 'keys list --unused-for' 'keys list --limit' 'keys list --cursor'
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
        case 'audit list --user' 'audit list --action' 'audit list --resource-type' 'audit list --resource-id' 'audit list --status' 'audit list --since' 'audit list --until' 'audit list --limit' 'audit list --cursor'
            return 0
        case 'audit follow --user' 'audit follow --action' 'audit follow --resource-type' 'audit follow --resource-id' 'audit follow --status' 'audit follow --since-seq' 'audit follow --interval' 'audit follow --max-events' 'audit follow --timeout'
            return 0
        case 'audit export --user' 'audit export --action' 'audit export --resource-type' 'audit export --resource-id' 'audit export --status' 'audit export --since' 'audit export --until' 'audit export --format' 'audit export --output-file'
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
            printf '%s\n' db users keys audit completion
        case 'db'
            printf '%s\n' upgrade downgrade current history heads check status ping grant-runtime revoke-runtime
        case 'users'
            printf '%s\n' create list show update set-password check-password activate deactivate verify delete restore export import
        case 'keys'
            printf '%s\n' create list show revoke rotate extend set-scopes prune-expired verify
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
complete -c vutf -l output -s o -x -a 'table json jsonl csv' -d 'Output format: table, json, jsonl, csv (env VUTF_OUTPUT).'
complete -c vutf -l json -d 'Same as -o json.'
complete -c vutf -l actor -x -d 'Who is acting, for the audit log (env VUTF_ACTOR).'
complete -c vutf -l yes -d 'Assume yes to confirmations.'
complete -c vutf -l quiet -d 'Only data and errors.'
complete -c vutf -l no-color -d 'No colours (NO_COLOR is honoured too).'
complete -c vutf -l debug -d 'Show tracebacks.'
complete -c vutf -l version -d 'Print the version and exit.'
complete -c vutf -l help -s h -d 'Show this message and exit.'

# vutf
complete -c vutf -n '__vutf_at "" 0' -a db -d 'Manage the database schema (migrations, status, connectivity).'
complete -c vutf -n '__vutf_at "" 0' -a users -d 'Manage users: create, list, show, change, delete, import and export.'
complete -c vutf -n '__vutf_at "" 0' -a keys -d 'Manage API keys: create, list, show, revoke, rotate, extend, set-scopes, verify.'
complete -c vutf -n '__vutf_at "" 0' -a audit -d 'Read and check the audit log: list, show, follow, export, verify, head, stats.'
complete -c vutf -n '__vutf_at "" 0' -a completion -d 'Print a shell completion script (bash, zsh, fish).'

# vutf db
complete -c vutf -n '__vutf_at "db" 0' -a upgrade -d 'Upgrade the schema to REVISION (default: head).'
complete -c vutf -n '__vutf_at "db" 0' -a downgrade -d 'Downgrade the schema to REVISION (asks for confirmation first).'
complete -c vutf -n '__vutf_at "db" 0' -a current -d 'Show the schema revision of the database and the head revision.'
complete -c vutf -n '__vutf_at "db" 0' -a history -d 'List the migration revisions, newest first.'
complete -c vutf -n '__vutf_at "db" 0' -a heads -d 'List the head revision(s) of the migration scripts.'
complete -c vutf -n '__vutf_at "db" 0' -a check -d 'Verify that the schema is at head and matches the models.'
complete -c vutf -n '__vutf_at "db" 0' -a status -d 'Show server, revision, row counts, pool and timeouts.'
complete -c vutf -n '__vutf_at "db" 0' -a ping -d 'Make one round trip to the database and report its latency.'
complete -c vutf -n '__vutf_at "db" 0' -a grant-runtime -d 'Give ROLE exactly what vutf needs at run time (PostgreSQL only).'
complete -c vutf -n '__vutf_at "db" 0' -a revoke-runtime -d 'Take back from ROLE what grant-runtime gave (PostgreSQL only).'

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
complete -c vutf -n '__vutf_at "users" 0' -a list -d 'List users: every one for json, jsonl and csv, a page in a table.'
complete -c vutf -n '__vutf_at "users" 0' -a show -d 'Show one user (deleted users too, marked as such).'
complete -c vutf -n '__vutf_at "users" 0' -a update -d 'Change a user\'s email, full name or superuser flag.'
complete -c vutf -n '__vutf_at "users" 0' -a set-password -d 'Set a user\'s password (at least 15 characters by default; no other rules).'
complete -c vutf -n '__vutf_at "users" 0' -a check-password -d 'Check a user\'s password: exit 0 if it matches, 5 if not.'
complete -c vutf -n '__vutf_at "users" 0' -a activate -d 'Activate a user (an active user is left as it is).'
complete -c vutf -n '__vutf_at "users" 0' -a deactivate -d 'Deactivate a user: they cannot log in and their API keys stop working.'
complete -c vutf -n '__vutf_at "users" 0' -a verify -d 'Mark a user\'s email address verified.'
complete -c vutf -n '__vutf_at "users" 0' -a delete -d 'Delete a user: soft (restorable; their API keys are revoked) or --hard.'
complete -c vutf -n '__vutf_at "users" 0' -a restore -d 'Restore a soft-deleted user (their revoked API keys stay revoked).'
complete -c vutf -n '__vutf_at "users" 0' -a export -d 'Export users as json (default), jsonl or csv, streamed.'
complete -c vutf -n '__vutf_at "users" 0' -a import -d 'Import users from a json, jsonl or csv file (all or nothing).'

# vutf users create
complete -c vutf -n '__vutf_at "users create"' -l email -x -d 'Email address.'
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
complete -c vutf -n '__vutf_at "users list"' -l sort -x -a 'username email created_at -username -email -created_at' -d 'username, email or created_at; prefix - for descending.'
complete -c vutf -n '__vutf_at "users list"' -l limit -x -d 'At most N rows (1-100000), then the next cursor on stderr. Default: every row for json, jsonl and csv; a page of 100 for a table.'
complete -c vutf -n '__vutf_at "users list"' -l cursor -x -d 'Continue after the page that printed \'next cursor: CURSOR\' (same filters, sort).'
complete -c vutf -n '__vutf_at "users list"' -l all -d 'Every row, in a table too (not with --limit).'

# vutf users show
complete -c vutf -n '__vutf_at "users show"' -l with-keys -d 'Also list the user\'s API keys.'
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

# vutf users activate
complete -c vutf -n '__vutf_at "users activate" "0"' -x -a '(__vutf_names users)'

# vutf users deactivate
complete -c vutf -n '__vutf_at "users deactivate" "0"' -x -a '(__vutf_names users)'

# vutf users verify
complete -c vutf -n '__vutf_at "users verify" "0"' -x -a '(__vutf_names users)'

# vutf users delete
complete -c vutf -n '__vutf_at "users delete"' -l hard -d 'Remove the row and the user\'s API keys for good.'
complete -c vutf -n '__vutf_at "users delete" "0"' -x -a '(__vutf_names users)'

# vutf users restore
complete -c vutf -n '__vutf_at "users restore" "0"' -x -a '(__vutf_names users)'

# vutf users export
complete -c vutf -n '__vutf_at "users export"' -l include-hashes -d 'Include password hashes (treat as a secret).'
complete -c vutf -n '__vutf_at "users export"' -l deleted -d 'Only deleted users.'
complete -c vutf -n '__vutf_at "users export"' -l include-deleted -d 'Deleted and live users together.'

# vutf users import
complete -c vutf -n '__vutf_at "users import"' -l format -x -a 'json jsonl csv' -d 'json, jsonl or csv (default: from FILE).'
complete -c vutf -n '__vutf_at "users import"' -l dry-run -d 'Check everything, write nothing.'
complete -c vutf -n '__vutf_at "users import"' -l skip-existing -d 'Leave users whose username exists alone.'
complete -c vutf -n '__vutf_at "users import"' -l skip-invalid -d 'Import the good rows and only report the bad ones.'
complete -c vutf -n '__vutf_at "users import" "0"' -F

# vutf keys
complete -c vutf -n '__vutf_at "keys" 0' -a create -d 'Issue an API key and print it once.'
complete -c vutf -n '__vutf_at "keys" 0' -a list -d 'List API keys (default: the active ones).'
complete -c vutf -n '__vutf_at "keys" 0' -a show -d 'Show one API key by id or prefix.'
complete -c vutf -n '__vutf_at "keys" 0' -a revoke -d 'Revoke API keys, all or nothing.'
complete -c vutf -n '__vutf_at "keys" 0' -a rotate -d 'Replace a key by a new one; print the new key once.'
complete -c vutf -n '__vutf_at "keys" 0' -a extend -d 'Change a key\'s expiry.'
complete -c vutf -n '__vutf_at "keys" 0' -a set-scopes -d 'Replace a key\'s scopes with the given ones.'
complete -c vutf -n '__vutf_at "keys" 0' -a prune-expired -d 'Soft-delete keys that ended long ago.'
complete -c vutf -n '__vutf_at "keys" 0' -a verify -d 'Check an API key read from stdin (exit 0 valid, 5 refused).'

# vutf keys create
complete -c vutf -n '__vutf_at "keys create"' -l user -s u -x -a '(__vutf_names users)' -d 'Owner: username, email or id.'
complete -c vutf -n '__vutf_at "keys create"' -l name -s n -x -d 'Name, unique among the owner\'s keys.'
complete -c vutf -n '__vutf_at "keys create"' -l scope -s s -x -d 'Scope to grant; repeat it or separate with commas (read,write,targets:*).'
complete -c vutf -n '__vutf_at "keys create"' -l expires-in -x -d 'Expire after this long from now (90d, 12h, 2w).'
complete -c vutf -n '__vutf_at "keys create"' -l expires-at -x -d 'Expire at this ISO 8601 time (no zone means UTC).'
complete -c vutf -n '__vutf_at "keys create"' -l no-expiry -d 'Never expire.'
complete -c vutf -n '__vutf_at "keys create"' -l description -x -d 'Free text.'
complete -c vutf -n '__vutf_at "keys create"' -l secret-file -r -F -d 'Write the key to this NEW file (mode 0600) instead of stdout.'

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

# vutf keys show
complete -c vutf -n '__vutf_at "keys show" "0"' -x -a '(__vutf_names keys)'

# vutf keys revoke
complete -c vutf -n '__vutf_at "keys revoke"' -l user -s u -x -a '(__vutf_names users)' -d 'With --all: every key of this user.'
complete -c vutf -n '__vutf_at "keys revoke"' -l all -d 'Every key of --user.'
complete -c vutf -n '__vutf_at "keys revoke" "*"' -x -a '(__vutf_names keys)'

# vutf keys rotate
complete -c vutf -n '__vutf_at "keys rotate"' -l grace -x -d 'Keep the old key working this long (24h); default: none.'
complete -c vutf -n '__vutf_at "keys rotate"' -l expires-in -x -d 'Expire after this long from now (90d, 12h, 2w).'
complete -c vutf -n '__vutf_at "keys rotate"' -l expires-at -x -d 'Expire at this ISO 8601 time (no zone means UTC).'
complete -c vutf -n '__vutf_at "keys rotate"' -l no-expiry -d 'Never expire.'
complete -c vutf -n '__vutf_at "keys rotate"' -l secret-file -r -F -d 'Write the key to this NEW file (mode 0600) instead of stdout.'
complete -c vutf -n '__vutf_at "keys rotate" "0"' -x -a '(__vutf_names keys)'

# vutf keys extend
complete -c vutf -n '__vutf_at "keys extend"' -l expires-in -x -d 'Expire after this long from now (90d, 12h, 2w).'
complete -c vutf -n '__vutf_at "keys extend"' -l expires-at -x -d 'Expire at this ISO 8601 time (no zone means UTC).'
complete -c vutf -n '__vutf_at "keys extend"' -l no-expiry -d 'Never expire.'
complete -c vutf -n '__vutf_at "keys extend" "0"' -x -a '(__vutf_names keys)'

# vutf keys set-scopes
complete -c vutf -n '__vutf_at "keys set-scopes"' -l scope -s s -x -d 'Scope to grant; repeat it or separate with commas (read,write,targets:*).'
complete -c vutf -n '__vutf_at "keys set-scopes" "0"' -x -a '(__vutf_names keys)'

# vutf keys prune-expired
complete -c vutf -n '__vutf_at "keys prune-expired"' -l older-than -x -d 'Only keys expired or revoked at least this long ago.'

# vutf keys verify
complete -c vutf -n '__vutf_at "keys verify"' -l require-scope -x -d 'Also require this scope (exit 5 if missing).'
complete -c vutf -n '__vutf_at "keys verify"' -l record-usage -d 'Count this as a use (last used, usage count).'
complete -c vutf -n '__vutf_at "keys verify"' -l no-record -d 'Write nothing, not even the audit row of this attempt.'
complete -c vutf -n '__vutf_at "keys verify"' -l key-file -r -F -d 'Read the key from this file instead of stdin.'

# vutf audit
complete -c vutf -n '__vutf_at "audit" 0' -a list -d 'List audit entries, newest first: all for json, jsonl and csv, a page in a table.'
complete -c vutf -n '__vutf_at "audit" 0' -a show -d 'Show one audit entry in full, with its changes and metadata.'
complete -c vutf -n '__vutf_at "audit" 0' -a follow -d 'Print new audit entries as they are appended, like tail -f.'
complete -c vutf -n '__vutf_at "audit" 0' -a export -d 'Export audit entries, oldest first, streamed in constant memory.'
complete -c vutf -n '__vutf_at "audit" 0' -a verify -d 'Recompute the audit hash chain and report the first problem.'
complete -c vutf -n '__vutf_at "audit" 0' -a head -d 'Print the head of the chain as SEQ:HASH, to record somewhere else.'
complete -c vutf -n '__vutf_at "audit" 0' -a stats -d 'Count audit entries by action, actor, resource type, status or day.'

# vutf audit list
complete -c vutf -n '__vutf_at "audit list"' -l user -x -a '(__vutf_names users)' -d 'Only entries about this user: username, email or id.'
complete -c vutf -n '__vutf_at "audit list"' -l action -x -d 'Only this action (user.create) or glob (user.*, *.create).'
complete -c vutf -n '__vutf_at "audit list"' -l resource-type -x -d 'Only this resource type (user, ...).'
complete -c vutf -n '__vutf_at "audit list"' -l resource-id -x -d 'Only this resource id.'
complete -c vutf -n '__vutf_at "audit list"' -l status -x -a 'success failure error' -d 'Only this status: success, failure, error.'
complete -c vutf -n '__vutf_at "audit list"' -l since -x -d 'From TIME on: ISO 8601 (UTC if no zone), 15m, 2h, 7d, today, yesterday.'
complete -c vutf -n '__vutf_at "audit list"' -l until -x -d 'Before TIME (same forms as --since).'
complete -c vutf -n '__vutf_at "audit list"' -l reverse -d 'Oldest first.'
complete -c vutf -n '__vutf_at "audit list"' -l limit -x -d 'At most N rows (1-100000), then the next cursor on stderr. Default: every row for json, jsonl and csv; a page of 100 for a table.'
complete -c vutf -n '__vutf_at "audit list"' -l cursor -x -d 'Continue after the page that printed \'next cursor: CURSOR\' (same filters, sort).'
complete -c vutf -n '__vutf_at "audit list"' -l all -d 'Every row, in a table too (not with --limit).'

# vutf audit show

# vutf audit follow
complete -c vutf -n '__vutf_at "audit follow"' -l user -x -a '(__vutf_names users)' -d 'Only entries about this user: username, email or id.'
complete -c vutf -n '__vutf_at "audit follow"' -l action -x -d 'Only this action (user.create) or glob (user.*, *.create).'
complete -c vutf -n '__vutf_at "audit follow"' -l resource-type -x -d 'Only this resource type (user, ...).'
complete -c vutf -n '__vutf_at "audit follow"' -l resource-id -x -d 'Only this resource id.'
complete -c vutf -n '__vutf_at "audit follow"' -l status -x -a 'success failure error' -d 'Only this status: success, failure, error.'
complete -c vutf -n '__vutf_at "audit follow"' -l since-seq -x -d 'Replay from SEQ first, then follow.'
complete -c vutf -n '__vutf_at "audit follow"' -l interval -x -d 'Pause between two polls.'
complete -c vutf -n '__vutf_at "audit follow"' -l max-events -x -d 'Stop after N entries.'
complete -c vutf -n '__vutf_at "audit follow"' -l timeout -x -d 'Stop after SECONDS.'

# vutf audit export
complete -c vutf -n '__vutf_at "audit export"' -l user -x -a '(__vutf_names users)' -d 'Only entries about this user: username, email or id.'
complete -c vutf -n '__vutf_at "audit export"' -l action -x -d 'Only this action (user.create) or glob (user.*, *.create).'
complete -c vutf -n '__vutf_at "audit export"' -l resource-type -x -d 'Only this resource type (user, ...).'
complete -c vutf -n '__vutf_at "audit export"' -l resource-id -x -d 'Only this resource id.'
complete -c vutf -n '__vutf_at "audit export"' -l status -x -a 'success failure error' -d 'Only this status: success, failure, error.'
complete -c vutf -n '__vutf_at "audit export"' -l since -x -d 'From TIME on: ISO 8601 (UTC if no zone), 15m, 2h, 7d, today, yesterday.'
complete -c vutf -n '__vutf_at "audit export"' -l until -x -d 'Before TIME (same forms as --since).'
complete -c vutf -n '__vutf_at "audit export"' -l format -x -a 'jsonl csv json' -d 'jsonl (default), csv or json (a streamed array); -o jsonl|csv|json also works.'
complete -c vutf -n '__vutf_at "audit export"' -l output-file -r -F -d 'Write to PATH (a new file gets mode 0600) instead of stdout.'
complete -c vutf -n '__vutf_at "audit export"' -l force -d 'Overwrite an existing --output-file.'

# vutf audit verify
complete -c vutf -n '__vutf_at "audit verify"' -l since-seq -x -d 'Start at SEQ (linked to the row before).'
complete -c vutf -n '__vutf_at "audit verify"' -l anchor -x -d 'A head recorded earlier (vutf audit head): it must still be in the chain.'

# vutf audit head

# vutf audit stats
complete -c vutf -n '__vutf_at "audit stats"' -l by -x -a 'action actor resource-type status day' -d 'Group by: action, actor, resource-type, status or day (UTC).'
complete -c vutf -n '__vutf_at "audit stats"' -l since -x -d 'From TIME on: ISO 8601 (UTC if no zone), 15m, 2h, 7d, today, yesterday.'
complete -c vutf -n '__vutf_at "audit stats"' -l until -x -d 'Before TIME (same forms as --since).'

# vutf completion
complete -c vutf -n '__vutf_at "completion" 0' -a bash -d 'Print the bash completion script.'
complete -c vutf -n '__vutf_at "completion" 0' -a zsh -d 'Print the zsh completion script.'
complete -c vutf -n '__vutf_at "completion" 0' -a fish -d 'Print the fish completion script.'

# vutf completion bash

# vutf completion zsh

# vutf completion fish
