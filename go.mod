module github.com/briefapp/brief

go 1.26
