-- expect: :4: error: model { ... } is called more than once
-- expect: : 1 error
-- A loop calling model 200,000 times: one problem per line, not 200,000 to sort and print.
for i = 1, 200000 do model { name = "m" .. i } end
