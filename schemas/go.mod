module github.com/vigie/vigie/schemas

go 1.26
