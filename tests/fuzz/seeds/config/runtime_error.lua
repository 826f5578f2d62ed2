-- expect: 2: attempt to call a nil value
x = nosuchfunction()
