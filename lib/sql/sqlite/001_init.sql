CREATE TABLE placeholder (x INTEGER);
