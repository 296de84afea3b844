# sine.gp — truth against the model's streamed prediction of the next sample.
#   gnuplot -e "csv='out/sine/predictions.csv'; png='out/sine/predictions.png'" sine.gp
set terminal pngcairo size 900,500 font ",10"
set output png
set datafile separator ","
set key top center horizontal
set title "sine: next-sample prediction, streamed one step at a time (sine\\_app)"
set xlabel "t (samples, 0.2 rad each)"
set ylabel "x[t+1]"
set y2label "|error|"
set ytics nomirror
set y2tics
set yrange [-1.2:1.5]
set y2range [0:*]
set grid
set autoscale xfix
set offsets 1, 1, 0, 0
plot csv using 1:3 with lines lw 3 lc rgb "#9ecae1" title "truth", \
     ''  using 1:4 with linespoints pt 7 ps 0.4 lw 1 lc rgb "#d62728" title "prediction", \
     ''  using 1:5 axes x1y2 with impulses lc rgb "#555555" title "|error| (right axis)"
