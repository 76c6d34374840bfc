# bash completion for vutf, generated from its command tree by
#   python -m vutf_cli.cli.completion_files --write completions/
# (the same as `vutf completion bash`): do not edit.  Completing starts
# no process, except `vutf completion names` for usernames and key prefixes.
# Install: vutf completion bash > ~/.local/share/bash-completion/completions/vutf

_vutf_names() {  # KIND PREFIX: the only completion that runs vutf
    mapfile -t COMPREPLY < <(command vutf completion names "$1" "$2" 2>/dev/null)
}

_vutf_files() {  # PREFIX
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$1")
}

_vutf_choices() {  # PREFIX WORD...
    local prefix=$1
    shift
    mapfile -t COMPREPLY < <(compgen -W "$*" -- "$prefix")
}

_vutf_commands() {  # PATH: sets _vutf_words to its subcommands
    case $1 in
        '') _vutf_words='doctor plan apply export-state batch db users keys roles audit completion' ;;
        'db') _vutf_words='upgrade downgrade current history heads check status ping grant-runtime revoke-runtime' ;;
        'users') _vutf_words='create list show update set-password check-password unlock activate deactivate verify delete restore export import add-role remove-role' ;;
        'keys') _vutf_words='create list show revoke delete rotate extend set-scopes prune-expired verify' ;;
        'roles') _vutf_words='create list show update delete restore members prune-expired' ;;
        'audit') _vutf_words='list show follow export verify head stats' ;;
        'completion') _vutf_words='bash zsh fish' ;;
        *) _vutf_words='' ;;
    esac
}

_vutf_options() {  # PATH: sets _vutf_words to its own options and the global ones
    case $1 in
        'plan') _vutf_words='--file -f --prune --out --overwrite' ;;
        'apply') _vutf_words='--file -f --prune --secrets-dir --no-passwords' ;;
        'export-state') _vutf_words='--output-file --force' ;;
        'batch') _vutf_words='--file -f --keep-going' ;;
        'db upgrade') _vutf_words='--sql' ;;
        'db downgrade') _vutf_words='--sql' ;;
        'db grant-runtime') _vutf_words='--create --no-hard-delete --sql' ;;
        'db revoke-runtime') _vutf_words='--sql' ;;
        'users create') _vutf_words='--email --full-name --superuser --verified --password-stdin --password-file --generate-password --if-not-exists' ;;
        'users list') _vutf_words='--active --inactive --superuser --no-superuser --search --deleted --include-deleted --sort --limit --cursor --all --fields --no-headers --no-pager' ;;
        'users show') _vutf_words='--with-keys --permissions --fields --no-headers --no-pager' ;;
        'users update') _vutf_words='--email --full-name --superuser --no-superuser --expected-version' ;;
        'users set-password') _vutf_words='--password-stdin --password-file --expected-version' ;;
        'users check-password') _vutf_words='--password-stdin --password-file' ;;
        'users deactivate') _vutf_words='--if-exists' ;;
        'users delete') _vutf_words='--hard --if-exists' ;;
        'users restore') _vutf_words='--if-exists' ;;
        'users export') _vutf_words='--include-hashes --deleted --include-deleted --output-file --force' ;;
        'users import') _vutf_words='--input-format --dry-run --skip-existing --skip-invalid --allow-weak-hashes' ;;
        'users add-role') _vutf_words='--expires-in --expires-at --from-file --dry-run --if-not-exists' ;;
        'users remove-role') _vutf_words='--from-file --dry-run --if-exists' ;;
        'keys create') _vutf_words='--user -u --name -n --scope -s --expires-in --expires-at --no-expiry --description --secret-file --if-not-exists --force' ;;
        'keys list') _vutf_words='--user -u --active --expired --revoked --any-state --expiring-within --unused-for --limit --cursor --all --fields --no-headers --no-pager' ;;
        'keys show') _vutf_words='--fields --no-headers --no-pager' ;;
        'keys revoke') _vutf_words='--user -u --all --if-exists' ;;
        'keys delete') _vutf_words='--if-exists' ;;
        'keys rotate') _vutf_words='--grace --expires-in --expires-at --no-expiry --secret-file' ;;
        'keys extend') _vutf_words='--expires-in --expires-at --no-expiry' ;;
        'keys set-scopes') _vutf_words='--scope -s --force' ;;
        'keys prune-expired') _vutf_words='--older-than' ;;
        'keys verify') _vutf_words='--require-scope --record-usage --no-record --key-file' ;;
        'roles create') _vutf_words='--scope --description --if-not-exists' ;;
        'roles list') _vutf_words='--include-deleted' ;;
        'roles update') _vutf_words='--scope --description --rename --expected-version' ;;
        'roles delete') _vutf_words='--if-exists' ;;
        'roles members') _vutf_words='--include-expired' ;;
        'roles prune-expired') _vutf_words='--dry-run' ;;
        'audit list') _vutf_words='--by-actor --user --action --resource-type --resource-id --status --since --until --since-seq --reverse --limit --cursor --all --fields --no-headers --no-pager' ;;
        'audit show') _vutf_words='--fields --no-headers --no-pager' ;;
        'audit follow') _vutf_words='--by-actor --user --action --resource-type --resource-id --status --lines -n --since --since-seq --interval --max-events --timeout' ;;
        'audit export') _vutf_words='--by-actor --user --action --resource-type --resource-id --status --since --until --since-seq --output-file --force' ;;
        'audit verify') _vutf_words='--since-seq --anchor' ;;
        'audit stats') _vutf_words='--by --since --until' ;;
        *) _vutf_words='' ;;
    esac
    _vutf_words+=' --database-url --output -o --json --actor --yes -y --quiet -q --no-color --debug --version --help -h'
}

_vutf_takes_value() {  # PATH OPTION
    case "$1 $2" in
        'plan --file'|'plan -f'|'plan --out') return 0 ;;
        'apply --file'|'apply -f'|'apply --secrets-dir') return 0 ;;
        'export-state --output-file') return 0 ;;
        'batch --file'|'batch -f') return 0 ;;
        'users create --email'|'users create --full-name'|'users create --password-file') return 0 ;;
        'users list --search'|'users list --sort'|'users list --limit'|'users list --cursor'|'users list --fields') return 0 ;;
        'users show --fields') return 0 ;;
        'users update --email'|'users update --full-name'|'users update --expected-version') return 0 ;;
        'users set-password --password-file'|'users set-password --expected-version') return 0 ;;
        'users check-password --password-file') return 0 ;;
        'users export --output-file') return 0 ;;
        'users import --input-format') return 0 ;;
        'users add-role --expires-in'|'users add-role --expires-at'|'users add-role --from-file') return 0 ;;
        'users remove-role --from-file') return 0 ;;
        'keys create --user'|'keys create -u'|'keys create --name'|'keys create -n'|'keys create --scope'|'keys create -s'|'keys create --expires-in'|'keys create --expires-at'|'keys create --description'|'keys create --secret-file') return 0 ;;
        'keys list --user'|'keys list -u'|'keys list --expiring-within'|'keys list --unused-for'|'keys list --limit'|'keys list --cursor'|'keys list --fields') return 0 ;;
        'keys show --fields') return 0 ;;
        'keys revoke --user'|'keys revoke -u') return 0 ;;
        'keys rotate --grace'|'keys rotate --expires-in'|'keys rotate --expires-at'|'keys rotate --secret-file') return 0 ;;
        'keys extend --expires-in'|'keys extend --expires-at') return 0 ;;
        'keys set-scopes --scope'|'keys set-scopes -s') return 0 ;;
        'keys prune-expired --older-than') return 0 ;;
        'keys verify --require-scope'|'keys verify --key-file') return 0 ;;
        'roles create --scope'|'roles create --description') return 0 ;;
        'roles update --scope'|'roles update --description'|'roles update --rename'|'roles update --expected-version') return 0 ;;
        'audit list --by-actor'|'audit list --user'|'audit list --action'|'audit list --resource-type'|'audit list --resource-id'|'audit list --status'|'audit list --since'|'audit list --until'|'audit list --since-seq'|'audit list --limit'|'audit list --cursor'|'audit list --fields') return 0 ;;
        'audit show --fields') return 0 ;;
        'audit follow --by-actor'|'audit follow --user'|'audit follow --action'|'audit follow --resource-type'|'audit follow --resource-id'|'audit follow --status'|'audit follow --lines'|'audit follow -n'|'audit follow --since'|'audit follow --since-seq'|'audit follow --interval'|'audit follow --max-events'|'audit follow --timeout') return 0 ;;
        'audit export --by-actor'|'audit export --user'|'audit export --action'|'audit export --resource-type'|'audit export --resource-id'|'audit export --status'|'audit export --since'|'audit export --until'|'audit export --since-seq'|'audit export --output-file') return 0 ;;
        'audit verify --since-seq'|'audit verify --anchor') return 0 ;;
        'audit stats --by'|'audit stats --since'|'audit stats --until') return 0 ;;
    esac
    case $2 in
        --database-url|--output|-o|--actor) return 0 ;;
    esac
    return 1
}

_vutf_value() {  # PATH OPTION PREFIX: the candidates for the option's value
    case "$1 $2" in
        'plan --file'|'plan -f') _vutf_files "$3"; return ;;
        'apply --file'|'apply -f') _vutf_files "$3"; return ;;
        'export-state --output-file') _vutf_files "$3"; return ;;
        'batch --file'|'batch -f') _vutf_files "$3"; return ;;
        'users create --password-file') _vutf_files "$3"; return ;;
        'users list --sort') _vutf_choices "$3" username email created_at -username -email -created_at; return ;;
        'users set-password --password-file') _vutf_files "$3"; return ;;
        'users check-password --password-file') _vutf_files "$3"; return ;;
        'users export --output-file') _vutf_files "$3"; return ;;
        'users import --input-format') _vutf_choices "$3" json jsonl csv; return ;;
        'keys create --user'|'keys create -u') _vutf_names users "$3"; return ;;
        'keys create --secret-file') _vutf_files "$3"; return ;;
        'keys list --user'|'keys list -u') _vutf_names users "$3"; return ;;
        'keys revoke --user'|'keys revoke -u') _vutf_names users "$3"; return ;;
        'keys rotate --secret-file') _vutf_files "$3"; return ;;
        'keys verify --key-file') _vutf_files "$3"; return ;;
        'audit list --user') _vutf_names users "$3"; return ;;
        'audit list --status') _vutf_choices "$3" success failure error; return ;;
        'audit follow --user') _vutf_names users "$3"; return ;;
        'audit follow --status') _vutf_choices "$3" success failure error; return ;;
        'audit export --user') _vutf_names users "$3"; return ;;
        'audit export --status') _vutf_choices "$3" success failure error; return ;;
        'audit export --output-file') _vutf_files "$3"; return ;;
        'audit stats --by') _vutf_choices "$3" action actor resource-type status day; return ;;
    esac
    case $2 in
        --output|-o) _vutf_choices "$3" table wide json jsonl csv yaml ;;
    esac
}

_vutf_argument() {  # PATH POSITION PREFIX
    case "$1 $2" in
        'users show 0') _vutf_names users "$3" ;;
        'users update 0') _vutf_names users "$3" ;;
        'users set-password 0') _vutf_names users "$3" ;;
        'users check-password 0') _vutf_names users "$3" ;;
        'users unlock 0') _vutf_names users "$3" ;;
        'users activate 0') _vutf_names users "$3" ;;
        'users deactivate 0') _vutf_names users "$3" ;;
        'users verify 0') _vutf_names users "$3" ;;
        'users delete 0') _vutf_names users "$3" ;;
        'users restore 0') _vutf_names users "$3" ;;
        'users import 0') _vutf_files "$3" ;;
        'keys show 0') _vutf_names keys "$3" ;;
        'keys revoke '*) _vutf_names keys "$3" ;;
        'keys delete '*) _vutf_names keys "$3" ;;
        'keys rotate 0') _vutf_names keys "$3" ;;
        'keys extend 0') _vutf_names keys "$3" ;;
        'keys set-scopes 0') _vutf_names keys "$3" ;;
        'roles show 0') _vutf_names roles "$3" ;;
        'roles update 0') _vutf_names roles "$3" ;;
        'roles delete 0') _vutf_names roles "$3" ;;
        'roles restore 0') _vutf_names roles "$3" ;;
        'roles members 0') _vutf_names roles "$3" ;;
    esac
}

_vutf() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmdpath='' word option='' expect='' rest='' nargs=0 i
    local _vutf_words
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ -n $expect ]]; then
            # bash splits --option=value at '=': skip the '=' too.
            [[ $word == = ]] || expect=''
            continue
        fi
        if [[ -z $rest && $word == -- ]]; then rest=1; continue; fi
        if [[ -z $rest && $word == -* ]]; then
            if _vutf_takes_value "$cmdpath" "$word"; then expect=1; option=$word; fi
            continue
        fi
        _vutf_commands "$cmdpath"
        if [[ -z $rest && $nargs == 0 && " $_vutf_words " == *" $word "* ]]; then
            cmdpath=${cmdpath:+$cmdpath }$word
        else
            ((nargs++))
        fi
    done
    if [[ -n $expect ]]; then
        [[ $cur == = ]] && cur=''
        _vutf_value "$cmdpath" "$option" "$cur"
    elif [[ -z $rest && $cur == -* ]]; then
        _vutf_options "$cmdpath"
        _vutf_choices "$cur" $_vutf_words
    else
        _vutf_commands "$cmdpath"
        if [[ -n $_vutf_words && $nargs == 0 ]]; then
            _vutf_choices "$cur" $_vutf_words
        else
            _vutf_argument "$cmdpath" "$nargs" "$cur"
        fi
    fi
    return 0
}

complete -F _vutf vutf
