-- expect: :4: error: more than 1000 distinct undefined names are read
-- expect: :4: error: v1 is not defined
-- 100,000 distinct undefined names: a bounded record, a bounded report.
for i = 1, 100000 do local _ = _ENV["v" .. i] end
