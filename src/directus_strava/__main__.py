from directus_strava.cli import main

main()
