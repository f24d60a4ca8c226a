"""The least code some recipes need beyond the commands: functions of ``python`` stages."""
