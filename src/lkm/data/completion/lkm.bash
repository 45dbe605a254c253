# bash completion for lkm (generated from lkm's option tables; do not edit)
_lkm_opts() {
    local tool="$1" cur="$2" prev="$3"
    case "$tool" in
    modinfo)
        case "$prev" in -b|--basedir) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-a --author -d --description -l --license -p --parameters -n --filename -0 --null -m --modname -F --field -k --set-version -b --basedir -V --version -h --help --json --exports --imports" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    link)
        case "$prev" in --layout) COMPREPLY=($(compgen -W "linux-6.1 linux-6.12 linux-2.4" -- "$cur")); return;; esac
        case "$prev" in -k|-o|--kernel|--config|--output|--kallsyms|--svg|--with|--blob|--map|--ksyms|--persist) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-k --kernel --layout --config --base --region --percpu-base -o --output --kallsyms --vermagic --force-modversion --force-vermagic --svg --with --json --blob --map --ksyms --name --autoclean --no-export --no-ksymoops --kallsyms24 --persist -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    kallsyms)
        case "$prev" in --arch) COMPREPLY=($(compgen -W "x86_64 i386 arm64" -- "$cur")); return;; esac
        case "$prev" in --from-image|--elf|--state) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--from-image --arch --elf --json --model --state -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    insmod)
        case "$prev" in --state) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-f --force -V --version -h --help --model --state --json" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    rmmod)
        case "$prev" in --state) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-f --force -s --syslog -v --verbose -V --version -h --help --model --state --json" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    lsmod)
        case "$prev" in --state) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--model --state --json -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    ksyms)
        case "$prev" in --state) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-a --all -h --noheader -m --json --model --state -V --version --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    proc)
        case "$prev" in --state|--svg|--snapshot|--sections) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--model --state --json --svg --snapshot --sections -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    model)
        case "$prev" in --policy) COMPREPLY=($(compgen -W "vmalloc kmalloc-first" -- "$cur")); return;; esac
        case "$prev" in --arch) COMPREPLY=($(compgen -W "x86_64 i386 arm64" -- "$cur")); return;; esac
        case "$prev" in --layout) COMPREPLY=($(compgen -W "linux-6.1 linux-6.12" -- "$cur")); return;; esac
        case "$prev" in --lockdown) COMPREPLY=($(compgen -W "none integrity confidentiality" -- "$cur")); return;; esac
        case "$prev" in -k|--kernel|--symbols|--modules-root|--trusted-keys|--state) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--policy --kmalloc-max -k --kernel --symbols --release --vermagic --arch --layout --modules-root --nowait --force --sig-enforce --lockdown --trusted-keys --json --model --state -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    demo)
        case "$prev" in --html) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--html --json -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    verify)
        case "$prev" in --config|--kcore|--snapshot) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--config --kcore --snapshot -q --quiet --json -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    run)
        case "$prev" in -k|--with|--kernel|--kallsyms|--device-replay|--session|--state|--script) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--exit --json --strict --with -k --kernel --kallsyms --synthetic --budget --timeout --memory --device --device-replay --irq --advance --session --script -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    dev)
        case "$prev" in --session|--state) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--session --json -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    depmod)
        case "$prev" in -C|-b|-F|-E|--config|--basedir|--filesyms|--symvers|--graph) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-a --all -A --quick -e --errsyms -n --show --dry-run -P --symbol-prefix -C --config -v --verbose -w --warn -V --version -h --help -b --basedir -F --filesyms -E --symvers --jobs --graph --no-cache --json" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    modprobe)
        case "$prev" in -C|-d|--config|--dirname|--svg|--dot|--state) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-a --all -r --remove --remove-dependencies --remove-holders -w --wait --first-time -i --ignore-install -i --ignore-remove -b --use-blacklist -f --force --force-modversion --force-vermagic -R --resolve-alias -D --show-depends -c --showconfig -c --show-config --show-modversions --dump-modversions --show-exports -n --dry-run -n --show -C --config -d --dirname -S --set-version -s --syslog -q --quiet -v --verbose -V --version -h --help --svg --dot --json --model --state" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    why)
        case "$prev" in -d|-C|--dirname|--config|--log|--state) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-d --dirname -S --set-version -C --config -b --log --json --model --state -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    ksymoops)
        case "$prev" in --format) COMPREPLY=($(compgen -W "ksymoops decode-stacktrace json" -- "$cur")); return;; esac
        case "$prev" in -k|-l|-s|-m|-o|-v|--debug-root|--html) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-k -K -l -L -s -m -M -o -O -v -V --debug-root --offset -r --debuginfod --format --json --html --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    compat)
        case "$prev" in --kernel|--symvers) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--kernel --symvers --enforce --all --weak-modules --json -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    firmware)
        case "$prev" in -b|--basedir|--firmware-root|--fw-path) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-b --basedir -S --set-version --firmware-root --fw-path --no-xz --no-zstd --missing --json -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    btf)
        case "$prev" in --kernel-version) COMPREPLY=($(compgen -W "6.1 6.12" -- "$cur")); return;; esac
        case "$prev" in -B|--base-btf) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-B --base-btf --kernel-version --json -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    sig)
        case "$prev" in --kernel-version) COMPREPLY=($(compgen -W "6.1 6.12" -- "$cur")); return;; esac
        case "$prev" in --kernel|--keyring) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--kernel --keyring --kernel-version --enforce --json -d -p -k -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    faddr2line)
        COMPREPLY=($(compgen -W "-l --list --json -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    triage)
        case "$prev" in --format) COMPREPLY=($(compgen -W "table json html" -- "$cur")); return;; esac
        case "$prev" in --engine) COMPREPLY=($(compgen -W "local dask" -- "$cur")); return;; esac
        case "$prev" in -o|--output|--symbols-dir) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "--format --json -o --output --symbols-dir --engine --workers -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    kmod)
        case "$prev" in -f|--format) COMPREPLY=($(compgen -W "human tmpfiles devname" -- "$cur")); return;; esac
        case "$prev" in -o|--output) COMPREPLY=($(compgen -f -- "$cur")); return;; esac
        COMPREPLY=($(compgen -W "-f --format -o --output --json -V --version -h --help" -- "$cur"))
        [[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
        ;;
    esac
}
_lkm() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local tool="${COMP_WORDS[0]##*/}"
    if [[ "$tool" == lkm ]]; then
        if [[ $COMP_CWORD -eq 1 ]]; then
            COMPREPLY=($(compgen -W "modinfo link kallsyms insmod rmmod lsmod ksyms proc model demo verify run dev depmod modprobe why ksymoops compat firmware btf sig faddr2line triage kmod --help --version" -- "$cur")); return
        fi
        tool="${COMP_WORDS[1]}"
    fi
    _lkm_opts "$tool" "$cur" "$prev"
}
complete -F _lkm lkm
# kmod's names, where lkm is installed under them:
# complete -F _lkm depmod insmod kmod lsmod modinfo modprobe rmmod
