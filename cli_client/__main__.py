try:
    from .main import main
except KeyboardInterrupt:  # Ctrl-C while Python is still loading the command: no traceback
    raise SystemExit(130) from None

main()
