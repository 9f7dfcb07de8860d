module example.invalid/librecsys

go 1.19
